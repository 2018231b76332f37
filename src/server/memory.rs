//! After load: what llama.cpp allocated on each device, next to what the planner predicted.

use crate::engine::DeviceMemory;
use crate::plan::{DevicePlan, MemoryEstimate, fmt_bytes};

/// One line per device, the GPUs first: the allocation by kind, then the prediction for that
/// place and the error. With the planner's split (`devices`, by device name) each GPU is
/// compared with its own prediction; without one the GPUs' sum is compared on the last GPU's
/// line.
pub fn memory_report(
    predicted: Option<&MemoryEstimate>,
    devices: &[DevicePlan],
    allocated: &[DeviceMemory],
) -> Vec<String> {
    let gpus: Vec<&DeviceMemory> = allocated.iter().filter(|d| d.device != "host").collect();
    let gpu_sum: u64 = gpus.iter().map(|d| d.total()).sum();
    allocated
        .iter()
        .map(|d| {
            let mut line = format!(
                "{}: {} allocated (weights {}, KV cache {}, output {}, compute {})",
                d.device,
                fmt_bytes(d.total()),
                fmt_bytes(d.weights),
                fmt_bytes(d.kv),
                fmt_bytes(d.output),
                fmt_bytes(d.compute),
            );
            let own = devices.iter().find(|p| p.name == d.device);
            let compared = match predicted {
                Some(p) if d.device == "host" => Some((p.host_total(), d.total(), "")),
                Some(_) if !devices.is_empty() => own.map(|p| (p.total(), d.total(), "")),
                Some(p) if gpus.last().is_some_and(|last| last.device == d.device) => {
                    let all = if gpus.len() > 1 { " for all GPUs" } else { "" };
                    Some((p.gpu_total(), gpu_sum, all))
                }
                _ => None,
            };
            if let Some((predicted, actual, scope)) = compared {
                line += &format!(
                    "; predicted {}{scope} ({})",
                    fmt_bytes(predicted),
                    relative_error(predicted, actual)
                );
            }
            line
        })
        .collect()
}

/// The prediction's error relative to the actual bytes, signed: `+2.1%` predicted too much.
fn relative_error(predicted: u64, actual: u64) -> String {
    if actual == 0 {
        return if predicted == 0 {
            "exact".into()
        } else {
            "nothing allocated".into()
        };
    }
    let error = (predicted as f64 - actual as f64) / actual as f64 * 100.0;
    format!("{error:+.1}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn device(name: &str, weights: u64, kv: u64, compute: u64) -> DeviceMemory {
        DeviceMemory {
            device: name.into(),
            weights: weights * MIB,
            kv: kv * MIB,
            output: 0,
            compute: compute * MIB,
        }
    }

    #[test]
    fn compares_each_place_with_its_prediction() {
        let predicted = MemoryEstimate {
            gpu_weights: 1000 * MIB,
            gpu_kv: 100 * MIB,
            gpu_compute: 100 * MIB,
            host_weights: 50 * MIB,
            ..MemoryEstimate::default()
        };
        let allocated = [device("CUDA0", 1000, 100, 76), device("host", 50, 0, 0)];
        let report = memory_report(Some(&predicted), &[], &allocated);
        assert_eq!(
            report,
            [
                "CUDA0: 1.15 GiB allocated (weights 1000.0 MiB, KV cache 100.0 MiB, output 0.0 MiB, \
                 compute 76.0 MiB); predicted 1.17 GiB (+2.0%)",
                "host: 50.0 MiB allocated (weights 50.0 MiB, KV cache 0.0 MiB, output 0.0 MiB, \
                 compute 0.0 MiB); predicted 50.0 MiB (+0.0%)",
            ]
        );
    }

    #[test]
    fn several_gpus_are_compared_together_and_no_prediction_is_no_comparison() {
        let predicted = MemoryEstimate {
            gpu_weights: 200 * MIB,
            ..MemoryEstimate::default()
        };
        let allocated = [device("CUDA0", 100, 0, 0), device("CUDA1", 100, 0, 0)];
        let report = memory_report(Some(&predicted), &[], &allocated);
        assert!(!report[0].contains("predicted"), "{}", report[0]);
        assert!(
            report[1].ends_with("predicted 200.0 MiB for all GPUs (+0.0%)"),
            "{}",
            report[1]
        );
        // With the planner's split, each GPU against its own prediction.
        let planned = |name: &str, weights: u64| DevicePlan {
            name: name.into(),
            free: 0,
            usable: 0,
            layers: None,
            output: false,
            weights: weights * MIB,
            kv: 0,
            compute: 0,
        };
        let devices = [planned("CUDA0", 90), planned("CUDA1", 110)];
        let report = memory_report(Some(&predicted), &devices, &allocated);
        assert!(
            report[0].ends_with("predicted 90.0 MiB (-10.0%)"),
            "{}",
            report[0]
        );
        assert!(
            report[1].ends_with("predicted 110.0 MiB (+10.0%)"),
            "{}",
            report[1]
        );
        assert!(
            memory_report(None, &[], &allocated)
                .iter()
                .all(|l| !l.contains("predicted"))
        );
    }
}
