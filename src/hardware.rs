//! Compute devices and their memory: every GPU llama.cpp's backends see, host RAM, CPU threads.
