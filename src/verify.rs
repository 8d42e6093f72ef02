//! `verify`, the library's main entry: live sources go through the row pipeline, sides given as
//! baseline directories through the baseline comparison. Both end in the same report.

use std::sync::Arc;

use crate::error::Result;
use crate::progress::Reporter;
use crate::report::VerifyReport;
use crate::settings::VerifySettings;

/// Runs a verify and returns its report; `Err` only when nothing could be compared at all (a
/// source unreachable, a named table absent everywhere).
pub async fn verify(
    settings: &VerifySettings,
    reporter: Arc<dyn Reporter>,
) -> Result<VerifyReport> {
    if !settings.baselines.is_empty() {
        return crate::baseline::compare::run(settings, reporter).await;
    }
    Ok(crate::pipeline::run(settings, reporter).await?.report)
}
