//! Where a model comes from: a GGUF file, a folder of quants, or split files, resolved to the
//! files the planner chooses among.
