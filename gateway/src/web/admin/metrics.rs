//! `/admin/metrics` (seed 004): the reactivation funnel as a chart, drawn
//! here as SVG (no script, no CDN), and the figures of customers who came
//! back.

use axum::response::Response;
use minijinja::context;
use proto::{billing::v1 as billing, identity::v1 as identity};
use serde::Serialize;

use super::Console;
use crate::web::PageError;

/// The chart's drawing width for the largest step, in SVG units.
const BAR_WIDTH: u64 = 560;

/// One step of the funnel, with its bar.
#[derive(Debug, Serialize)]
struct Step {
    label: &'static str,
    count: u64,
    /// Of the first step, in whole percent.
    percent: u64,
    width: u64,
    y: u64,
}

/// The funnel's steps, each bar's width relative to the first step.
fn steps(counts: [(&'static str, u64); 5]) -> Vec<Step> {
    let top = counts.iter().map(|(_, count)| *count).max().unwrap_or(0).max(1);
    counts
        .into_iter()
        .zip(0u64..)
        .map(|((label, count), row)| Step {
            label,
            count,
            percent: count * 100 / top,
            // A step with any count stays visible.
            width: if count == 0 { 0 } else { (count * BAR_WIDTH / top).max(4) },
            y: row * 44,
        })
        .collect()
}

/// `GET /admin/metrics`.
pub async fn page(console: Console) -> Result<Response, PageError> {
    let (mut identity_svc, mut billing_svc) = (console.state.identity.clone(), console.state.billing.clone());
    let (funnel, money) = tokio::join!(
        identity_svc.get_reactivation_funnel(console.request(identity::GetReactivationFunnelRequest {})),
        billing_svc.get_reactivation_metrics(console.request(billing::GetReactivationMetricsRequest {})),
    );
    let (funnel, money) = (funnel?.into_inner(), money?.into_inner());
    let steps = steps([
        ("Requested", funnel.requested),
        ("Email sent", funnel.email_sent),
        ("Link opened", funnel.link_opened),
        ("Confirmed", funnel.confirmed),
        ("Paid", money.returned_customers),
    ]);
    let returned = money.returned_monthly + money.returned_annual;
    let monthly_share = (money.returned_monthly * 100).checked_div(returned).unwrap_or(0);
    Ok(console.render(
        "admin_metrics.html",
        "metrics",
        context! {
            steps,
            chart_height => 5 * 44,
            rate => format!("{:.1}", money.reactivation_rate_percent),
            average_days => format!("{:.1}", money.average_days_to_return),
            churned => money.churned_customers,
            returned => money.returned_customers,
            monthly => money.returned_monthly,
            annual => money.returned_annual,
            monthly_share,
            annual_share => if returned == 0 { 0 } else { 100 - monthly_share },
            offers => money.welcome_back_offers_used,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_relative_to_the_largest_step_and_a_count_stays_visible() {
        let drawn = steps([("a", 200), ("b", 100), ("c", 1), ("d", 0), ("e", 0)]);
        let widths: Vec<u64> = drawn.iter().map(|step| step.width).collect();
        assert_eq!(widths, [BAR_WIDTH, BAR_WIDTH / 2, 4, 0, 0]);
        assert_eq!(drawn[1].percent, 50);
        assert!(steps([("a", 0), ("b", 0), ("c", 0), ("d", 0), ("e", 0)]).iter().all(|step| step.width == 0));
    }
}
