//! Embeddings as llama-server makes them: the pooling that turns a sequence's hidden states
//! into one vector (or none: a vector per token), and the normalisation applied to a pooled
//! vector (`--embd-normalize`, the request's `embd_normalize`). Plain Rust over plain data, so
//! the table tests below pin llama.cpp's arithmetic (`common_embd_normalize`).

/// llama.cpp's pooling types (`--pooling`); `Unspecified` takes the model's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooling {
    #[default]
    Unspecified,
    /// No pooling: one vector per token.
    None,
    Mean,
    /// The first token's vector (BERT's `[CLS]`).
    Cls,
    /// The last token's vector.
    Last,
    /// A reranker's classification head: one score per sequence.
    Rank,
}

impl Pooling {
    /// llama.cpp's value (`enum llama_pooling_type`).
    pub fn to_llama(self) -> i32 {
        match self {
            Self::Unspecified => -1,
            Self::None => 0,
            Self::Mean => 1,
            Self::Cls => 2,
            Self::Last => 3,
            Self::Rank => 4,
        }
    }

    /// From llama.cpp's value; unknown values read as unspecified.
    pub fn from_llama(value: i32) -> Self {
        match value {
            0 => Self::None,
            1 => Self::Mean,
            2 => Self::Cls,
            3 => Self::Last,
            4 => Self::Rank,
            _ => Self::Unspecified,
        }
    }

    /// The name `--pooling` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::None => "none",
            Self::Mean => "mean",
            Self::Cls => "cls",
            Self::Last => "last",
            Self::Rank => "rank",
        }
    }
}

/// A pooled vector scaled as llama.cpp's `common_embd_normalize`: -1 leaves it, 0 scales the
/// largest magnitude to 32760 (the int16 range), 2 to unit Euclidean length, any other p to
/// unit p-norm (1: taxicab). A zero vector stays zero. Sums run in f64, as llama.cpp's do.
pub fn normalize(embd: &[f32], norm: i32) -> Vec<f32> {
    let sum: f64 = match norm {
        -1 => 1.0,
        0 => embd.iter().fold(0.0f64, |m, &x| m.max(f64::from(x.abs()))) / 32760.0,
        2 => embd.iter().map(|&x| f64::from(x * x)).sum::<f64>().sqrt(),
        p => embd
            .iter()
            .map(|&x| f64::from(x.abs()).powi(p))
            .sum::<f64>()
            .powf(1.0 / f64::from(p)),
    };
    let scale = if sum > 0.0 { (1.0 / sum) as f32 } else { 0.0 };
    embd.iter().map(|&x| x * scale).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_as_llama_cpp() {
        let v = [3.0f32, -4.0];
        let cases: [(i32, [f32; 2]); 5] = [
            (-1, [3.0, -4.0]),
            (0, [3.0 * 32760.0 / 4.0, -32760.0]),
            (1, [3.0 / 7.0, -4.0 / 7.0]),
            (2, [0.6, -0.8]),
            (3, [3.0 / 91f32.cbrt(), -4.0 / 91f32.cbrt()]),
        ];
        for (norm, want) in cases {
            let got = normalize(&v, norm);
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-3 * w.abs().max(1.0), "{norm}: {got:?}");
            }
        }
        assert_eq!(normalize(&[0.0, 0.0], 2), vec![0.0, 0.0]);
    }

    #[test]
    fn llama_values_round_trip() {
        for p in [
            Pooling::Unspecified,
            Pooling::None,
            Pooling::Mean,
            Pooling::Cls,
            Pooling::Last,
            Pooling::Rank,
        ] {
            assert_eq!(Pooling::from_llama(p.to_llama()), p);
        }
    }
}
