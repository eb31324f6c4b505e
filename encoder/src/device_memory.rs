//! How much memory a device has free: what a job checks its plan against before it loads
//! anything (a run that cannot fit should fail in a second, not after minutes of loading,
//! or be killed by the kernel's OOM killer halfway through).

use crate::ComputeDevice;

/// Free and total bytes of a device's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceMemory {
    pub free: u64,
    pub total: u64,
}

/// The device's memory now, or why it cannot be known.
///
/// - CPU: `MemAvailable` of /proc/meminfo (free memory plus reclaimable caches), lowered to
///   the cgroup's headroom (`memory.max - memory.current`) where the process runs under a
///   memory limit, as in a container or a Slurm job.
/// - CUDA: the driver's free and total memory of that GPU (`cuMemGetInfo`).
pub fn device_memory(device: ComputeDevice) -> Result<DeviceMemory, String> {
    match device {
        ComputeDevice::Cpu => host_memory(),
        ComputeDevice::Cuda(index) => cuda_memory(index),
    }
}

fn host_memory() -> Result<DeviceMemory, String> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")
        .map_err(|e| format!("cannot read /proc/meminfo: {e}"))?;
    let field = |name: &str| -> Option<u64> {
        meminfo
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    let (Some(mut free), Some(mut total)) = (field("MemAvailable"), field("MemTotal")) else {
        return Err("/proc/meminfo has no MemAvailable or MemTotal".into());
    };
    if let Some((limit, used)) = cgroup_limit() {
        total = total.min(limit);
        free = free.min(limit.saturating_sub(used));
    }
    Ok(DeviceMemory { free, total })
}

/// The cgroup v2 memory limit and usage of this process, where there is a limit.
fn cgroup_limit() -> Option<(u64, u64)> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let limit = read("memory.max")?.trim().parse::<u64>().ok()?; // "max": no limit
    let used = read("memory.current")?.trim().parse::<u64>().ok()?;
    Some((limit, used))
}

#[cfg(feature = "cuda")]
fn cuda_memory(index: usize) -> Result<DeviceMemory, String> {
    let context = cudarc::driver::CudaContext::new(index)
        .map_err(|e| format!("cannot open CUDA device {index}: {e:?}"))?;
    let (free, total) = context
        .mem_get_info()
        .map_err(|e| format!("cannot query CUDA device {index}'s memory: {e:?}"))?;
    Ok(DeviceMemory {
        free: free as u64,
        total: total as u64,
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda_memory(_index: usize) -> Result<DeviceMemory, String> {
    Err("this build has no GPU support".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_memory_is_known_on_linux() {
        let memory = device_memory(ComputeDevice::Cpu).expect("host memory");
        assert!(memory.total > 0);
        assert!(memory.free <= memory.total);
    }
}
