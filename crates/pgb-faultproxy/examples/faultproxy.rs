//! The fault proxy as a process, for measurements by hand or from scripts
//! (`scripts/bench-network.sh`):
//!
//! ```sh
//! cargo run -p pgb-faultproxy --example faultproxy -- http://127.0.0.1:9000 s3 10 42
//! ```
//!
//! Arguments: the emulator's endpoint, the store (`s3`, `gcs`, `azure`), one request in N
//! faulted (0: none) and the seed. It prints `listening <url>` on stdout, serves until its
//! stdin closes, then prints how many requests it saw and which faults it applied.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use pgb_faultproxy::{FaultProxy, RandomFaults, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [upstream, store, one_in, seed] = args.as_slice() else {
        return Err("usage: faultproxy UPSTREAM s3|gcs|azure ONE_IN SEED".into());
    };
    let store = match store.as_str() {
        "s3" => Store::S3,
        "gcs" => Store::Gcs,
        "azure" => Store::Azure,
        other => return Err(format!("unknown store {other}").into()),
    };
    let one_in: u64 = one_in.parse()?;
    let proxy = FaultProxy::start(upstream, store)?;
    if one_in > 0 {
        proxy.set_random(Some(RandomFaults::transient(one_in, seed.parse()?)));
    }
    println!("listening {}", proxy.url());
    std::io::stdout().flush()?;
    // Serve until stdin closes (or a line is entered).
    let _ = std::io::stdin().lock().lines().next();
    let log = proxy.log();
    let mut faults: BTreeMap<String, usize> = BTreeMap::new();
    for e in &log {
        if let Some(f) = &e.fault {
            *faults.entry(format!("{} {f}", e.method)).or_default() += 1;
        }
    }
    println!(
        "requests {} faulted {}",
        log.len(),
        faults.values().sum::<usize>()
    );
    for (what, n) in faults {
        println!("  {n:4}  {what}");
    }
    Ok(())
}
