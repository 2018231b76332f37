//! The control vector flags, with llama-server's names and value syntax: `--control-vector`
//! (files at strength 1), `--control-vector-scaled` (`FNAME:SCALE`), both repeatable and
//! comma-separated, and `--control-vector-layer-range START END`. The files are read here,
//! before the model loads, so that a bad one stops the server at once, naming it.

use anyhow::Context;
use clap::Args;

use crate::engine::control_vector::{self, ControlVectors};

#[derive(Debug, Clone, Default, Args)]
pub struct ControlVectorArgs {
    /// A control vector to add at strength 1 (repeatable; comma-separated files add several).
    #[arg(long = "control-vector", value_name = "FNAME")]
    pub control_vector: Vec<String>,

    /// A control vector with its strength, `FNAME:SCALE` (repeatable; comma-separated).
    #[arg(long = "control-vector-scaled", value_name = "FNAME:SCALE,…")]
    pub control_vector_scaled: Vec<String>,

    /// The first and last layer (inclusive) the control vectors apply to (default: 1 and the
    /// model's last).
    #[arg(
        long = "control-vector-layer-range",
        num_args = 2,
        value_names = ["START", "END"],
        allow_negative_numbers = true
    )]
    pub control_vector_layer_range: Option<Vec<i32>>,
}

impl ControlVectorArgs {
    /// The control vectors, read and summed; `None` without any.
    pub fn load(&self) -> anyhow::Result<Option<ControlVectors>> {
        let mut files = Vec::new();
        for value in &self.control_vector {
            files.extend(control_vector::parse_plain(value));
        }
        for value in &self.control_vector_scaled {
            files.extend(
                control_vector::parse_scaled(value)
                    .map_err(anyhow::Error::msg)
                    .context("--control-vector-scaled")?,
            );
        }
        if files.is_empty() {
            return Ok(None);
        }
        let directions = control_vector::load(&files)?;
        let layer_range = match self.control_vector_layer_range.as_deref() {
            Some(&[start, end]) => (start, end),
            _ => (0, 0),
        };
        Ok(Some(ControlVectors {
            directions,
            layer_range,
        }))
    }
}
