//! `fedcare devices`: the GPU adapters wgpu sees and the choice `--trainer gpu` and
//! `--trainer auto` would make.

use anyhow::Result;
use fedcare_gpu_trainer::device;

pub(crate) fn run() -> Result<()> {
    let selection = device::Selection::from_env();
    let adapters = device::list_adapters(&selection);
    println!("backends searched: {:?} (WGPU_BACKEND to change)", selection.backends);
    if adapters.is_empty() {
        println!("no GPU adapters found; --trainer auto trains on the CPU");
        return Ok(());
    }
    println!(
        "{:>3}  {:<40} {:<8} {:<14} {:>12} {:>12} {:>10}  driver",
        "#", "name", "backend", "type", "max binding", "max buffer", "wg/dim"
    );
    for a in &adapters {
        println!(
            "{:>3}  {:<40} {:<8} {:<14} {:>9} MiB {:>9} MiB {:>10}  {}",
            a.index,
            a.name,
            a.backend,
            format!("{:?}", a.device_type),
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20,
            a.max_compute_workgroups_per_dimension,
            a.driver
        );
    }
    match device::preferred(&adapters, selection.adapter.as_deref(), selection.backends) {
        Ok(index) => {
            let chosen = &adapters[index];
            println!("--trainer gpu uses [{index}] {}", chosen.name);
            if chosen.is_hardware() {
                println!("--trainer auto uses [{index}] {}", chosen.name);
            } else {
                println!("--trainer auto uses the CPU ([{index}] is a software adapter)");
            }
        }
        Err(e) => println!("--trainer gpu: {e}"),
    }
    Ok(())
}
