//! llama.cpp's tensor types and model file types, loaded from `quant-profiles/quants.toml` so the
//! numbers live in data (bits per weight, block sizes, quality ranks), not in code.

use serde::Deserialize;
use std::sync::OnceLock;

/// A ggml tensor storage type: `block_size` weights take `type_size` bytes.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct GgmlType {
    pub id: u32,
    pub name: String,
    pub block_size: u64,
    pub type_size: u64,
}

impl GgmlType {
    /// Bytes of one row of `n` elements, as ggml's `ggml_row_size` (n is a multiple of the block).
    pub fn row_size(&self, n: u64) -> u64 {
        n.div_ceil(self.block_size) * self.type_size
    }
}

/// A model file type (`general.file_type`) as llama-quantize names it, with its quality data.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct QuantProfile {
    pub name: String,
    pub ftype: u32,
    pub bits_per_weight: f64,
    pub quality_rank: u32,
    #[serde(default)]
    pub ppl_increase: Option<f64>,
    #[serde(default)]
    pub ladder: bool,
}

impl QuantProfile {
    /// The name as llama.cpp prints it (`Q4_K_M`).
    pub fn display_name(&self) -> String {
        self.name.to_uppercase()
    }
}

#[derive(Deserialize)]
struct Profiles {
    ggml_types: Vec<GgmlType>,
    quants: Vec<QuantProfile>,
}

fn profiles() -> &'static Profiles {
    static PROFILES: OnceLock<Profiles> = OnceLock::new();
    PROFILES.get_or_init(|| {
        // The file is part of the build; a parse error is a bug caught by the unit tests.
        toml::from_str(include_str!("../../quant-profiles/quants.toml"))
            .expect("quant-profiles/quants.toml is valid")
    })
}

/// The ggml type with this id, if llama.cpp still defines it.
pub fn ggml_type(id: u32) -> Option<&'static GgmlType> {
    profiles().ggml_types.iter().find(|t| t.id == id)
}

/// The ggml type with this name (case-insensitive: `q8_0`, `F16`).
pub fn ggml_type_by_name(name: &str) -> Option<&'static GgmlType> {
    profiles()
        .ggml_types
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(name))
}

/// Every known model file type, best quality first.
pub fn quants() -> Vec<&'static QuantProfile> {
    let mut all: Vec<_> = profiles().quants.iter().collect();
    all.sort_by_key(|q| std::cmp::Reverse(q.quality_rank));
    all
}

/// The quant with this llama.cpp name, case-insensitive (`Q4_K_M`, `q4_k_m`); llama-quantize's
/// aliases `q3_k`, `q4_k`, `q5_k` mean their `_m` variants.
pub fn quant_by_name(name: &str) -> Option<&'static QuantProfile> {
    let lower = name.to_ascii_lowercase();
    let lower = match lower.as_str() {
        "q3_k" | "q4_k" | "q5_k" => format!("{lower}_m"),
        _ => lower,
    };
    profiles().quants.iter().find(|q| q.name == lower)
}

/// The quant of a `general.file_type` value (the `LLAMA_FTYPE_GUESSED` bit ignored).
pub fn quant_by_ftype(ftype: u32) -> Option<&'static QuantProfile> {
    let ftype = ftype & !1024;
    profiles().quants.iter().find(|q| q.ftype == ftype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_and_are_consistent() {
        let p = profiles();
        assert!(p.ggml_types.len() > 30);
        for t in &p.ggml_types {
            assert!(t.block_size > 0 && t.type_size > 0, "{t:?}");
        }
        let mut ranks: Vec<_> = p.quants.iter().map(|q| q.quality_rank).collect();
        ranks.sort();
        ranks.dedup();
        assert_eq!(ranks.len(), p.quants.len(), "quality ranks are distinct");
        assert_eq!(p.quants.iter().filter(|q| q.ladder).count(), 6);
    }

    #[test]
    fn names_and_ids_as_llama_cpp_spells_them() {
        let cases = [
            ("Q4_K_M", 15),
            ("q4_k", 15),
            ("q8_0", 7),
            ("F16", 1),
            ("bf16", 32),
            ("MXFP4_MOE", 38),
            ("iq2_xxs", 19),
        ];
        for (name, ftype) in cases {
            assert_eq!(quant_by_name(name).map(|q| q.ftype), Some(ftype), "{name}");
        }
        assert!(quant_by_name("q4_k_xl").is_none());
        assert_eq!(quant_by_ftype(15 | 1024).unwrap().name, "q4_k_m");
        assert_eq!(ggml_type(12).unwrap().row_size(512), 288);
        assert_eq!(ggml_type_by_name("Q8_0").unwrap().row_size(64), 68);
    }
}
