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
            width: if count == 0 {
                0
            } else {
                (count * BAR_WIDTH / top).max(4)
            },
            y: row * 44,
        })
        .collect()
}

/// One week of the funnel and of returns, as a row and a group of columns.
#[derive(Debug, Default, Serialize)]
struct Week {
    label: String,
    /// `Dec 2`, under the week's columns.
    short: String,
    requested: u64,
    email_sent: u64,
    link_opened: u64,
    confirmed: u64,
    paid: u64,
    cancelled: u64,
    monthly: u64,
    annual: u64,
    offers: u64,
    average_days: String,
    /// The columns' heights (requested, confirmed, paid) and left edge.
    x: u64,
    heights: [u64; 3],
}

/// The chart's drawing height for the largest week's count, in SVG units.
const COLUMN_HEIGHT: u64 = 160;

/// The row of the week starting `at`, new or seen before.
fn week_at<'w>(
    weeks: &'w mut std::collections::BTreeMap<i64, Week>,
    at: Option<&prost_types::Timestamp>,
) -> &'w mut Week {
    let start = at.map_or(0, |at| at.seconds);
    weeks.entry(start).or_insert_with(|| Week {
        label: super::day(at).unwrap_or_default(),
        short: at
            .and_then(platform::wire::from_timestamp)
            .map(|at| at.format("%b %-d").to_string())
            .unwrap_or_default(),
        ..Week::default()
    })
}

/// Fills in, from each of one service's `rows`, the row of the week it
/// starts with `fill`.
fn fill<T: Weekly>(weeks: &mut std::collections::BTreeMap<i64, Week>, rows: Vec<T>, fill: impl Fn(&mut Week, &T)) {
    for row in rows {
        fill(week_at(weeks, row.week_start()), &row);
    }
}

/// A service's row of one week.
trait Weekly {
    fn week_start(&self) -> Option<&prost_types::Timestamp>;
}

impl Weekly for identity::FunnelWeek {
    fn week_start(&self) -> Option<&prost_types::Timestamp> {
        self.week_start.as_ref()
    }
}

impl Weekly for billing::ReturnsWeek {
    fn week_start(&self) -> Option<&prost_types::Timestamp> {
        self.week_start.as_ref()
    }
}

/// Each week seen by either service, oldest first, with its columns.
fn weeks(funnel: Vec<identity::FunnelWeek>, money: Vec<billing::ReturnsWeek>) -> Vec<Week> {
    let mut weeks: std::collections::BTreeMap<i64, Week> = std::collections::BTreeMap::new();
    fill(&mut weeks, funnel, |row, week| {
        row.requested = week.requested;
        row.email_sent = week.email_sent;
        row.link_opened = week.link_opened;
        row.confirmed = week.confirmed;
    });
    fill(&mut weeks, money, |row, week| {
        row.paid = week.returned;
        row.cancelled = week.cancelled;
        row.monthly = week.returned_monthly;
        row.annual = week.returned_annual;
        row.offers = week.welcome_back_offers_used;
        row.average_days = if week.returned == 0 {
            String::new()
        } else {
            format!("{:.1}", week.average_days_to_return)
        };
    });
    let mut weeks: Vec<Week> = weeks.into_values().collect();
    let top = weeks
        .iter()
        .map(|week| week.requested.max(week.confirmed).max(week.paid))
        .max()
        .unwrap_or(0)
        .max(1);
    for (slot, week) in (0u64..).zip(weeks.iter_mut()) {
        week.x = 40 + slot * 70;
        week.heights = [week.requested, week.confirmed, week.paid].map(|count| count * COLUMN_HEIGHT / top);
    }
    weeks
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
    let weeks = weeks(funnel.weeks, money.weeks);
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
            weeks,
            column_height => COLUMN_HEIGHT,
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
        assert!(
            steps([("a", 0), ("b", 0), ("c", 0), ("d", 0), ("e", 0)])
                .iter()
                .all(|step| step.width == 0)
        );
    }

    #[test]
    fn the_weeks_of_both_services_line_up_by_their_start() {
        let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
        let funnel = vec![
            identity::FunnelWeek {
                week_start: at(0),
                requested: 4,
                confirmed: 2,
                ..Default::default()
            },
            identity::FunnelWeek {
                week_start: at(604_800),
                requested: 1,
                ..Default::default()
            },
        ];
        let money = vec![billing::ReturnsWeek {
            week_start: at(604_800),
            returned: 1,
            average_days_to_return: 31.5,
            ..Default::default()
        }];
        let drawn = weeks(funnel, money);
        assert_eq!(drawn.len(), 2);
        assert_eq!(
            (drawn[1].requested, drawn[1].paid, drawn[1].average_days.as_str()),
            (1, 1, "31.5")
        );
        assert_eq!(drawn[0].heights, [COLUMN_HEIGHT, COLUMN_HEIGHT / 2, 0]);
        assert!(drawn[0].x < drawn[1].x);
    }
}
