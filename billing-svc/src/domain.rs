//! Plans, prices and the subscription lifecycle, in integer cents.

use std::fmt;

use chrono::{DateTime, Utc};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Plan {
    Grower,
    Builder,
    Maven,
}

impl Plan {
    pub const ALL: [Plan; 3] = [Plan::Grower, Plan::Builder, Plan::Maven];

    /// The monthly price in cents (seed 004: $15 / $35 / $100).
    pub fn monthly_cents(self) -> i64 {
        match self {
            Plan::Grower => 1_500,
            Plan::Builder => 3_500,
            Plan::Maven => 10_000,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Grower => "grower",
            Plan::Builder => "builder",
            Plan::Maven => "maven",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|plan| plan.as_str() == raw)
    }

    /// The plan's name as customers read it (emails).
    pub fn display_name(self) -> &'static str {
        match self {
            Plan::Grower => "Grower",
            Plan::Builder => "Builder",
            Plan::Maven => "Maven",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BillingPeriod {
    Monthly,
    Annual,
}

impl BillingPeriod {
    pub const ALL: [BillingPeriod; 2] = [BillingPeriod::Monthly, BillingPeriod::Annual];

    pub fn as_str(self) -> &'static str {
        match self {
            BillingPeriod::Monthly => "monthly",
            BillingPeriod::Annual => "annual",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|period| period.as_str() == raw)
    }

    /// The welcome-back offer for this period (seed 004).
    pub fn welcome_back(self) -> WelcomeBack {
        match self {
            BillingPeriod::Monthly => WelcomeBack::MONTHLY,
            BillingPeriod::Annual => WelcomeBack::ANNUAL,
        }
    }
}

/// A plan bought for a billing period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Product {
    pub plan: Plan,
    pub period: BillingPeriod,
}

impl Product {
    pub fn all() -> impl Iterator<Item = Product> {
        Plan::ALL.into_iter().flat_map(|plan| {
            BillingPeriod::ALL
                .into_iter()
                .map(move |period| Product { plan, period })
        })
    }

    /// One period's price in cents: the monthly price, or twelve of them
    /// less 15 % for a year.
    pub fn amount_cents(self) -> i64 {
        let monthly = self.plan.monthly_cents();
        match self.period {
            BillingPeriod::Monthly => monthly,
            BillingPeriod::Annual => monthly * 12 * 85 / 100,
        }
    }

    /// The first period's price with the welcome-back offer.
    pub fn welcome_back_cents(self) -> i64 {
        self.period.welcome_back().apply(self.amount_cents())
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.plan.as_str(), self.period.as_str())
    }
}

/// A win-back coupon: a percentage off the first payment, once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WelcomeBack {
    pub coupon: &'static str,
    pub name: &'static str,
    pub percent_off: i64,
}

impl WelcomeBack {
    pub const MONTHLY: WelcomeBack = WelcomeBack {
        coupon: "PR_WELCOME_BACK_MONTHLY",
        name: "Welcome back: 50% off your first month",
        percent_off: 50,
    };
    pub const ANNUAL: WelcomeBack = WelcomeBack {
        coupon: "PR_WELCOME_BACK_ANNUAL",
        name: "Welcome back: 20% off your first year",
        percent_off: 20,
    };
    pub const ALL: [WelcomeBack; 2] = [Self::MONTHLY, Self::ANNUAL];

    /// The offer as customers read it, e.g. "50% off your first month".
    pub fn describe(self) -> String {
        let first = if self.coupon == Self::ANNUAL.coupon {
            "year"
        } else {
            "month"
        };
        format!("{}% off your first {first}", self.percent_off)
    }

    /// `amount` less the offer, rounded to the nearest cent (half up), as
    /// Stripe rounds a percentage coupon.
    pub fn apply(self, amount: i64) -> i64 {
        amount - (amount * self.percent_off + 50) / 100
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Trial,
    Active,
    Cancelled,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Trial => "trial",
            Status::Active => "active",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Status::Trial, Status::Active, Status::Cancelled, Status::Expired]
            .into_iter()
            .find(|status| status.as_str() == raw)
    }
}

/// A tenant's current subscription.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub id: uuid::Uuid,
    pub tenant_id: uuid::Uuid,
    pub stripe_subscription_id: Option<String>,
    pub product: Product,
    pub status: Status,
    pub next_billing_date: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub payment_failed_at: Option<DateTime<Utc>>,
    /// Bumped by every local change; names the Stripe call that change
    /// makes, so a retried call is the same call.
    pub revision: i32,
}

/// Why a subscription cannot make the change asked of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Only an active or trial subscription can be cancelled.
    NotCancellable,
    /// Only a cancelled subscription can be undone.
    NotCancelled,
    /// Its paid period is over (whether or not the expiry job has marked
    /// it yet): the customer must buy again.
    Expired,
}

impl Subscription {
    /// Cancelled at the end of the paid period, from `now`: only an active
    /// or trial subscription. The billing date does not move.
    pub fn cancel(&mut self, now: DateTime<Utc>) -> Result<(), Refused> {
        if !self.can_cancel() {
            return Err(Refused::NotCancellable);
        }
        self.status = Status::Cancelled;
        self.cancelled_at = Some(now);
        Ok(())
    }

    /// A cancellation undone (seed 003): only from `cancelled`, only before
    /// the paid period ends; the billing date does not move.
    pub fn undo_cancel(&mut self, now: DateTime<Utc>) -> Result<(), Refused> {
        match self.status {
            Status::Expired => return Err(Refused::Expired),
            Status::Cancelled if !self.can_reactivate(now) => return Err(Refused::Expired),
            Status::Cancelled => {}
            Status::Active | Status::Trial => return Err(Refused::NotCancelled),
        }
        self.status = Status::Active;
        self.cancelled_at = None;
        Ok(())
    }

    pub fn can_cancel(&self) -> bool {
        matches!(self.status, Status::Active | Status::Trial)
    }

    /// Undo is possible while the paid period runs.
    pub fn can_reactivate(&self, now: DateTime<Utc>) -> bool {
        self.status == Status::Cancelled && now < self.next_billing_date
    }

    /// Over: expired, or cancelled with its paid period behind it (the
    /// expiry job may not have marked it yet). Until then the customer holds
    /// a plan, and buying another would charge them twice.
    pub fn has_ended(&self, now: DateTime<Utc>) -> bool {
        match self.status {
            Status::Expired => true,
            Status::Cancelled => now >= self.next_billing_date,
            Status::Active | Status::Trial => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(status: Status, next_billing_date: DateTime<Utc>) -> Subscription {
        Subscription {
            id: uuid::Uuid::nil(),
            tenant_id: uuid::Uuid::nil(),
            stripe_subscription_id: None,
            product: product(Plan::Grower, BillingPeriod::Monthly),
            status,
            next_billing_date,
            cancelled_at: None,
            payment_failed_at: None,
            revision: 0,
        }
    }

    #[test]
    fn only_an_active_or_trial_subscription_is_cancelled_and_keeps_its_billing_date() {
        let now = Utc::now();
        let ends = now + chrono::Duration::days(10);
        for status in [Status::Active, Status::Trial] {
            let mut running = subscription(status, ends);
            running.cancel(now).expect("cancellable");
            assert_eq!(running.status, Status::Cancelled);
            assert_eq!(running.cancelled_at, Some(now));
            assert_eq!(running.next_billing_date, ends);
        }
        for status in [Status::Cancelled, Status::Expired] {
            let mut stopped = subscription(status, ends);
            assert_eq!(stopped.cancel(now), Err(Refused::NotCancellable));
            assert_eq!(stopped.status, status, "a refusal changes nothing");
        }
    }

    #[test]
    fn a_cancellation_is_undone_only_before_the_paid_period_ends() {
        let now = Utc::now();
        let ends = now + chrono::Duration::days(10);
        let mut cancelled = subscription(Status::Cancelled, ends);
        cancelled.cancelled_at = Some(now);
        cancelled.undo_cancel(now).expect("undone");
        assert_eq!(cancelled.status, Status::Active);
        assert_eq!(cancelled.cancelled_at, None);
        assert_eq!(cancelled.next_billing_date, ends);

        let mut over = subscription(Status::Cancelled, now);
        assert_eq!(over.undo_cancel(now), Err(Refused::Expired));
        assert_eq!(over.status, Status::Cancelled, "a refusal changes nothing");
        assert_eq!(
            subscription(Status::Expired, ends).undo_cancel(now),
            Err(Refused::Expired)
        );
        assert_eq!(
            subscription(Status::Active, ends).undo_cancel(now),
            Err(Refused::NotCancelled)
        );
        assert_eq!(
            subscription(Status::Trial, ends).undo_cancel(now),
            Err(Refused::NotCancelled)
        );
    }

    fn product(plan: Plan, period: BillingPeriod) -> Product {
        Product { plan, period }
    }

    #[test]
    fn prices_match_seed_004() {
        use BillingPeriod::*;
        use Plan::*;
        let table = [
            (Grower, Monthly, 1_500, 750),
            (Builder, Monthly, 3_500, 1_750),
            (Maven, Monthly, 10_000, 5_000),
            (Grower, Annual, 15_300, 12_240),
            (Builder, Annual, 35_700, 28_560),
            (Maven, Annual, 102_000, 81_600),
        ];
        for (plan, period, regular, welcome_back) in table {
            let product = product(plan, period);
            assert_eq!(product.amount_cents(), regular, "{product}");
            assert_eq!(product.welcome_back_cents(), welcome_back, "{product}");
        }
    }

    #[test]
    fn names_round_trip() {
        for product in Product::all() {
            assert_eq!(Plan::parse(product.plan.as_str()), Some(product.plan));
            assert_eq!(BillingPeriod::parse(product.period.as_str()), Some(product.period));
        }
        assert_eq!(Plan::parse("platinum"), None);
        assert_eq!(Status::parse("cancelled"), Some(Status::Cancelled));
    }
}
