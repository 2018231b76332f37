//! The memory model and the choice of quant and offload. Pure functions over plain data:
//! architecture invariant: nothing here calls llama.cpp.
