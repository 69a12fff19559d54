//! `pgb report`: one document of what the repository holds and proves, built by the library
//! from the repository alone ([`pgb_ops::report()`]) and rendered by it; this writes the file.

use std::io::Write as _;
use std::path::Path;

use super::Ctx;
use crate::args::{ReportArgs, ReportFormat};
use crate::exit::{FAILURE, Failure};
use crate::render;
use crate::resolve;

pub(super) async fn run(mut a: ReportArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let layer = resolve::job::layer(&mut a, ctx.env)?;
    let ctx = &ctx.with_env(&layer.env);
    let now = time::OffsetDateTime::now_utc();
    let opts = resolve::report_options(&a, layer.job.as_ref(), ctx.env, now)?;
    let repo = resolve::listed_repository(&a.repo, a.auth_key_file.as_deref(), ctx.env)?;
    let report = pgb_ops::report(&repo, &opts).await?;
    let text = match a.format.unwrap_or(ReportFormat::Html) {
        ReportFormat::Html => pgb_ops::report::html(&report),
        ReportFormat::Md => pgb_ops::report::markdown(&report),
        ReportFormat::Json => {
            let mut s = serde_json::to_string_pretty(&report)
                .map_err(|e| Failure::new(FAILURE, format!("cannot serialize the report: {e}")))?;
            s.push('\n');
            s
        }
    };
    match &a.output {
        None => render::stdout(|w| w.write_all(text.as_bytes())),
        Some(path) => write_file(path, text.as_bytes()),
    }
}

/// Writes `bytes` to `path` through a temporary file beside it, so a reader (a web server
/// publishing the report) never sees half a report.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let failed =
        |e: std::io::Error| Failure::new(FAILURE, format!("cannot write {}: {e}", path.display()));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.pgb-tmp-{}", std::process::id()));
    let res = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(failed)
}
