//! Where a router's models fit together: each model's planned memory per device against what
//! the devices had free when the router started (the planner's budget, less its margins).
//! Loading a model that does not fit beside the loaded ones unloads the least recently used
//! idle ones until it does; models at work are never unloaded. Pure: the caller plans.

use crate::plan::fmt_bytes;

/// Bytes on each GPU (in the planner's device order) and in host memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    pub gpus: Vec<u64>,
    pub host: u64,
}

impl Memory {
    /// Each device's bytes of `self` and `other` together.
    fn plus(&self, other: &Memory) -> Memory {
        let n = self.gpus.len().max(other.gpus.len());
        Memory {
            gpus: (0..n).map(|i| self.gpu(i) + other.gpu(i)).collect(),
            host: self.host + other.host,
        }
    }

    fn gpu(&self, i: usize) -> u64 {
        self.gpus.get(i).copied().unwrap_or(0)
    }
}

/// A device where a model does not fit beside the others.
struct Shortage {
    device: String,
    /// What the others use there, what the model needs there, and what there is.
    used: u64,
    need: u64,
    capacity: u64,
}

/// The first device (the GPUs in order, then host memory) where `need` does not fit beside
/// `used` in `capacity`.
fn shortage(used: &Memory, need: &Memory, capacity: &Memory) -> Option<Shortage> {
    let n = used.gpus.len().max(need.gpus.len());
    let gpus = (0..n).map(|i| (format!("GPU{i}"), used.gpu(i), need.gpu(i), capacity.gpu(i)));
    let host = (
        "host memory".to_string(),
        used.host,
        need.host,
        capacity.host,
    );
    gpus.chain(std::iter::once(host))
        .find(|(_, used, need, capacity)| used + need > *capacity)
        .map(|(device, used, need, capacity)| Shortage {
            device,
            used,
            need,
            capacity,
        })
}

/// A loaded (or loading) model.
#[derive(Debug, Clone)]
pub struct Resident {
    pub id: String,
    pub memory: Memory,
    /// Whether requests are running on it (or it is still loading).
    pub busy: bool,
    /// Larger is more recent.
    pub last_used: u64,
}

/// What loading a model takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// It fits beside the loaded models after unloading these (none: it fits as things are).
    Unload(Vec<String>),
    /// It cannot be loaded while the busy models run.
    Full(String),
}

/// Whether a model needing `need` fits in `capacity` beside `residents`, at most `max_models`
/// loaded at once (0: no limit), and which idle models must be unloaded first, least recently
/// used first.
pub fn place(
    capacity: &Memory,
    residents: &[Resident],
    need: &Memory,
    max_models: usize,
) -> Placement {
    let mut idle: Vec<&Resident> = residents.iter().filter(|r| !r.busy).collect();
    idle.sort_by_key(|r| r.last_used);
    let mut idle = idle.into_iter();
    let mut unload: Vec<String> = Vec::new();
    loop {
        let kept: Vec<&Resident> = residents
            .iter()
            .filter(|r| !unload.contains(&r.id))
            .collect();
        let used = kept
            .iter()
            .fold(Memory::default(), |sum, r| sum.plus(&r.memory));
        let too_many = max_models > 0 && kept.len() >= max_models;
        let over = shortage(&used, need, capacity);
        if !too_many && over.is_none() {
            return Placement::Unload(unload);
        }
        match idle.next() {
            Some(r) => unload.push(r.id.clone()),
            None => {
                let busy: Vec<&str> = kept.iter().map(|r| r.id.as_str()).collect();
                let why = match over {
                    Some(short) => format!(
                        "it needs {} of {} beside the models at work ({}), which have {} of {}",
                        fmt_bytes(short.need),
                        short.device,
                        busy.join(", "),
                        fmt_bytes(short.used),
                        fmt_bytes(short.capacity)
                    ),
                    None => format!(
                        "{max_models} models are loaded and at work ({}); --models-max is {max_models}",
                        busy.join(", ")
                    ),
                };
                return Placement::Full(why);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn mem(gpus: &[u64], host: u64) -> Memory {
        Memory {
            gpus: gpus.iter().map(|g| g * GIB).collect(),
            host: host * GIB,
        }
    }

    fn resident(id: &str, memory: Memory, busy: bool, last_used: u64) -> Resident {
        Resident {
            id: id.into(),
            memory,
            busy,
            last_used,
        }
    }

    fn unload(ids: &[&str]) -> Placement {
        Placement::Unload(ids.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn models_share_the_devices_and_the_least_recently_used_idle_ones_make_room() {
        // One 24 GiB GPU, 64 GiB of host memory.
        let capacity = mem(&[24], 64);
        let a = resident("a", mem(&[10], 1), false, 1);
        let b = resident("b", mem(&[8], 1), false, 2);
        let busy_a = resident("a", mem(&[10], 1), true, 1);
        let cases: Vec<(&str, Vec<Resident>, Memory, usize, Placement)> = vec![
            ("nothing loaded", vec![], mem(&[20], 1), 4, unload(&[])),
            (
                "fits beside both",
                vec![a.clone(), b.clone()],
                mem(&[6], 1),
                4,
                unload(&[]),
            ),
            // 10 + 8 + 12 > 24: a, used longest ago, goes; 8 + 12 fits.
            (
                "the oldest makes room",
                vec![a.clone(), b.clone()],
                mem(&[12], 1),
                4,
                unload(&["a"]),
            ),
            (
                "order is by use, not by list",
                vec![b.clone(), a.clone()],
                mem(&[12], 1),
                4,
                unload(&["a"]),
            ),
            (
                "both go",
                vec![a.clone(), b.clone()],
                mem(&[20], 1),
                4,
                unload(&["a", "b"]),
            ),
            // a is at work: b goes instead, and 10 + 12 fits.
            (
                "a busy model stays",
                vec![busy_a.clone(), b.clone()],
                mem(&[12], 1),
                4,
                unload(&["b"]),
            ),
            // Host memory counts too (CPU layers, a CPU-only model).
            (
                "host memory",
                vec![a.clone(), b.clone()],
                mem(&[0], 63),
                4,
                unload(&["a"]),
            ),
            (
                "--models-max",
                vec![a.clone(), b.clone()],
                mem(&[1], 1),
                2,
                unload(&["a"]),
            ),
            (
                "--models-max 0 is no limit",
                vec![a.clone(), b.clone()],
                mem(&[1], 1),
                0,
                unload(&[]),
            ),
        ];
        for (name, residents, need, max, want) in cases {
            assert_eq!(place(&capacity, &residents, &need, max), want, "{name}");
        }
    }

    #[test]
    fn a_model_that_cannot_fit_beside_busy_ones_says_what_holds_the_memory() {
        let capacity = mem(&[24, 24], 64);
        let busy = resident("big", mem(&[20, 20], 2), true, 1);
        let idle = resident("small", mem(&[1, 1], 1), false, 2);
        let Placement::Full(why) = place(&capacity, &[busy.clone(), idle], &mem(&[8, 0], 1), 4)
        else {
            panic!("expected no room");
        };
        assert_eq!(
            why,
            "it needs 8.00 GiB of GPU0 beside the models at work (big), which have 20.00 GiB of 24.00 GiB"
        );
        let Placement::Full(why) = place(&capacity, &[busy], &mem(&[1, 1], 1), 1) else {
            panic!("expected no room");
        };
        assert_eq!(
            why,
            "1 models are loaded and at work (big); --models-max is 1"
        );
    }
}
