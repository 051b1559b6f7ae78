//! The resources the executor may hand out at once, and what each task takes of them.
//!
//! A task takes what its `resources` say; what they leave out it takes from
//! [`Budget::default_request`] (one core, no memory, no GPU), so a document without
//! `resources` still runs as many tasks at once as there are cores.

use crate::document::Resources;
use crate::quantity::{Unit, format_cpu, format_memory, parse_quantity};

/// An amount of CPU, memory and GPUs (zero by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amount {
    /// CPU in millicores.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Whole GPUs.
    pub gpu: u64,
}

impl Amount {
    /// Whether `self` fits in `other` in every dimension.
    pub fn fits_in(&self, other: &Amount) -> bool {
        self.cpu_millis <= other.cpu_millis
            && self.memory_bytes <= other.memory_bytes
            && self.gpu <= other.gpu
    }

    /// `self` less `other`, never below zero.
    pub fn minus(&self, other: &Amount) -> Amount {
        Amount {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
            gpu: self.gpu.saturating_sub(other.gpu),
        }
    }

    /// `self` plus `other`, saturating.
    pub fn plus(&self, other: &Amount) -> Amount {
        Amount {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
            gpu: self.gpu.saturating_add(other.gpu),
        }
    }

    /// Each dimension the smaller of `self` and `other`.
    pub fn min(&self, other: &Amount) -> Amount {
        Amount {
            cpu_millis: self.cpu_millis.min(other.cpu_millis),
            memory_bytes: self.memory_bytes.min(other.memory_bytes),
            gpu: self.gpu.min(other.gpu),
        }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let memory = if self.memory_bytes == u64::MAX {
            "unlimited".to_string()
        } else {
            format_memory(self.memory_bytes)
        };
        write!(
            f,
            "cpu {}, memory {memory}, gpu {}",
            format_cpu(self.cpu_millis),
            self.gpu
        )
    }
}

/// What to do with a task that needs more than the whole budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Oversize {
    /// Refuse the run before anything starts, naming every such task.
    #[default]
    Reject,
    /// Run it with the whole budget, alone: what a laptop can do with a document written
    /// for a cluster.
    RunAlone,
}

/// The executor's resource budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// What may be in use at once.
    pub total: Amount,
    /// What a task takes of each resource its document leaves out.
    pub default_request: Amount,
    /// What happens to a task larger than `total`.
    pub oversize: Oversize,
}

impl Budget {
    /// This machine: its cores (`available_parallelism`), its memory (`MemTotal` of
    /// `/proc/meminfo`; unlimited where that cannot be read) and its NVIDIA GPUs (the
    /// `/dev/nvidia<N>` devices; none elsewhere).
    pub fn from_machine() -> Budget {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1);
        Budget::new(Amount {
            cpu_millis: cores * 1000,
            memory_bytes: machine_memory().unwrap_or(u64::MAX),
            gpu: machine_gpus(),
        })
    }

    /// This budget with what `cpu`, `memory` and `gpu` say in place of its own (Kubernetes
    /// quantities, as in documents: `"2"`, `"1500m"`, `"8Gi"`); `None` keeps a dimension.
    ///
    /// ```
    /// use trainstore_pipeline::Budget;
    /// let budget = Budget::from_machine().limited(Some("1.5"), Some("2Gi"), Some("0")).unwrap();
    /// assert_eq!((budget.total.cpu_millis, budget.total.memory_bytes), (1500, 2 << 30));
    /// assert!(Budget::from_machine().limited(Some("lots"), None, None).is_err());
    /// ```
    pub fn limited(
        mut self,
        cpu: Option<&str>,
        memory: Option<&str>,
        gpu: Option<&str>,
    ) -> Result<Budget, String> {
        if let Some(cpu) = cpu {
            self.total.cpu_millis = parse_quantity(cpu, Unit::Millicores)?;
        }
        if let Some(memory) = memory {
            self.total.memory_bytes = parse_quantity(memory, Unit::Bytes)?;
        }
        if let Some(gpu) = gpu {
            self.total.gpu = parse_quantity(gpu, Unit::Devices)?;
        }
        Ok(self)
    }

    /// A budget of `total`, the default request, oversized tasks rejected.
    pub fn new(total: Amount) -> Budget {
        Budget {
            total,
            default_request: Amount {
                cpu_millis: 1000,
                memory_bytes: 0,
                gpu: 0,
            },
            oversize: Oversize::Reject,
        }
    }

    /// What a task with `resources` takes.
    pub fn request(&self, resources: &Resources) -> Amount {
        Amount {
            cpu_millis: resources
                .cpu_millis
                .unwrap_or(self.default_request.cpu_millis),
            memory_bytes: resources
                .memory_bytes
                .unwrap_or(self.default_request.memory_bytes),
            gpu: resources.gpu.unwrap_or(self.default_request.gpu),
        }
    }
}

fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn machine_gpus() -> u64 {
    std::fs::read_dir("/dev")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name().to_str().is_some_and(|n| {
                        n.strip_prefix("nvidia")
                            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                    })
                })
                .count() as u64
        })
        .unwrap_or(0)
}
