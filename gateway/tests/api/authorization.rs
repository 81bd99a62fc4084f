//! Who may call what: every route the gateway serves — the REST API and the
//! web pages — with the status each kind of caller gets. The table below is
//! the documentation; the tests keep it complete and true.
//!
//! Who a route is for ([`Access`]):
//! * `Anyone` — no sign-in needed (registering, logging in, the emailed
//!   link, validating a key, health, the public pages);
//! * `SignedIn` — a customer, acting on their own data only: a route that
//!   takes no id acts on the caller, and one that takes an id refuses
//!   another customer's;
//! * `Admin` — support staff (the admin role);
//! * `Stripe` — only a request signed with the webhook secret is applied.
//!
//! (Calls between services carry an internal token over gRPC; the gateway
//! serves none of them, so no route here is internal.)
//!
//! Who calls ([`EXPECTED`] order): nobody (no token, no session); user A,
//! whose account, license key and subscription the routes' ids and bodies
//! name; user B, another customer, sending exactly A's request with their
//! own credentials; and an admin. The JSON routes read a bearer token, the
//! pages a session cookie; each caller sends both, plus a CSRF cookie and
//! the matching form field, so a page's answer is about who calls, not
//! about a missing CSRF value.
//!
//! A signed-in page without a session answers 303 to `/login`. Routes that
//! close the caller's own account (`closes_account`) are run by throwaway
//! accounts — a fresh A, B and admin for each caller — so the matrix stays
//! valid; for them, B's attempt must leave A's account open.

use std::{
    collections::BTreeSet,
    sync::atomic::{AtomicUsize, Ordering},
};

use reqwest::{Method, StatusCode, redirect};
use serde_json::Value;

use crate::helpers::{
    ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, Service, TestMesh, eventually, spawn_mesh, spawn_mesh_with,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Anyone,
    SignedIn,
    Admin,
    Stripe,
}

/// What a request sends. Placeholders: `{id}`, `{email}`, `{key}` — A's
/// account id, email and license key; `{fresh}` — an email never used;
/// `{probe}` and `{password}` — an account that exists only to log in.
#[derive(Clone, Copy, Debug)]
enum Body {
    Empty,
    Json(&'static str),
    /// URL-encoded fields; the CSRF field is added.
    Form(&'static str),
}

#[derive(Clone, Copy, Debug)]
struct Route {
    method: &'static str,
    /// The template, as the OpenAPI document and the router spell it.
    path: &'static str,
    access: Access,
    /// The status for nobody, A, B and an admin.
    expect: [u16; 4],
    /// Appended to the path when sent.
    query: &'static str,
    body: Body,
    /// The route closes or erases the caller's (or the named) account.
    closes_account: bool,
}

const fn route(method: &'static str, path: &'static str, access: Access, expect: [u16; 4]) -> Route {
    Route {
        method,
        path,
        access,
        expect,
        query: "",
        body: Body::Empty,
        closes_account: false,
    }
}

impl Route {
    const fn json(self, body: &'static str) -> Self {
        Self {
            body: Body::Json(body),
            ..self
        }
    }

    const fn form(self, fields: &'static str) -> Self {
        Self {
            body: Body::Form(fields),
            ..self
        }
    }

    const fn query(self, query: &'static str) -> Self {
        Self { query, ..self }
    }

    const fn closes_account(self) -> Self {
        Self {
            closes_account: true,
            ..self
        }
    }
}

use Access::{Admin, Anyone, SignedIn, Stripe};

/// Callers, in the order of each row's statuses.
const EXPECTED: [&str; 4] = ["nobody", "user A", "user B", "admin"];

/// Every route, in the order the matrix runs them: the admin's changes to
/// A's key come last in each row and build on one another (disabled, then
/// reactivated).
#[rustfmt::skip]
const ROUTES: &[Route] = &[
    // Accounts.
    route("POST", "/register", Anyone, [201, 201, 201, 201]).json(r#"{"email":"{fresh}","password":"{password}"}"#),
    route("POST", "/login", Anyone, [200, 200, 200, 200]).json(r#"{"email":"{probe}","password":"{password}"}"#),
    route("GET", "/me", SignedIn, [401, 200, 200, 200]),
    // B may not name A; an admin may.
    route("POST", "/deactivate_user", SignedIn, [401, 200, 403, 200]).json(r#"{"user_id":"{id}"}"#).closes_account(),
    // Takes no id: B and the admin cancel their own accounts.
    route("POST", "/api/cancel-account", SignedIn, [401, 200, 200, 200]).closes_account(),
    route("POST", "/delete_user", SignedIn, [401, 200, 403, 200]).json(r#"{"user_id":"{id}"}"#).closes_account(),
    // The same answer whoever asks and whatever the email.
    route("POST", "/reactivate_user", Anyone, [202, 202, 202, 202]).json(r#"{"email":"{email}"}"#),
    // The emailed link: the token is the credential, not the caller. The
    // page only shows a button; the token is checked when it is pressed.
    route("GET", "/reactivate", Anyone, [200, 200, 200, 200]).query("?token=not-a-link"),
    route("POST", "/reactivate", Anyone, [400, 400, 400, 400]).form("token=not-a-link"),

    // Support staff. A is active, so reactivating A is refused — after the
    // role check.
    route("POST", "/admin/users/{id}/reactivate", Admin, [401, 403, 403, 400]),
    route("GET", "/admin/users/{id}/events", Admin, [401, 403, 403, 200]),
    route("GET", "/api/admin/users", Admin, [401, 403, 403, 200]).query("?email=a&prefix=true"),
    route("GET", "/api/admin/users/{id}/timeline", Admin, [401, 403, 403, 200]),
    route("GET", "/api/admin/metrics/funnel", Admin, [401, 403, 403, 200]),
    route("GET", "/api/admin/metrics/reactivation", Admin, [401, 403, 403, 200]),
    route("GET", "/api/admin/webhooks/failed", Admin, [401, 403, 403, 200]),
    route("POST", "/api/admin/webhooks/failed/replay", Admin, [401, 403, 403, 200]),

    // Billing: each caller sees and changes their own subscription. A
    // holds one; B and the admin do not.
    route("GET", "/api/subscription", SignedIn, [401, 200, 200, 200]),
    route("GET", "/api/pricing", SignedIn, [401, 200, 200, 200]),
    route("POST", "/api/create-checkout-session", SignedIn, [401, 400, 200, 200]).json(r#"{"plan":"grower","billing_period":"monthly"}"#),
    route("POST", "/api/cancel-subscription", SignedIn, [401, 200, 400, 400]),
    route("POST", "/api/subscription/reactivate", SignedIn, [401, 200, 400, 400]),
    // Unsigned: nothing applied, whoever sends it.
    route("POST", "/api/stripe/webhook", Stripe, [400, 400, 400, 400]).json("{}"),
    route("GET", "/billing/success", Anyone, [200, 200, 200, 200]),
    route("GET", "/billing/cancelled", Anyone, [200, 200, 200, 200]),

    // License keys: managed by support only; validated by anyone.
    route("GET", "/api/keys", Admin, [401, 403, 403, 200]),
    route("POST", "/api/keys", Admin, [401, 403, 403, 201]).json(r#"{"email":"{email}","keyType":"development","ownerUserId":"{id}"}"#),
    route("GET", "/api/keys/{key}", Admin, [401, 403, 403, 200]),
    route("PATCH", "/api/keys/{key}", Admin, [401, 403, 403, 200]).json(r#"{"customer":{"name":"Renamed"}}"#),
    // A's key is a production key since A subscribed: extending it and
    // closing a deal on it are refused — after the role check.
    route("POST", "/api/keys/{key}/extend", Admin, [401, 403, 403, 400]).json(r#"{"days":7}"#),
    route("POST", "/api/keys/{key}/email", Admin, [401, 403, 403, 202]),
    route("GET", "/api/keys/{key}/history", Admin, [401, 403, 403, 200]),
    route("POST", "/api/keys/{key}/close-deal", Admin, [401, 403, 403, 400]),
    route("POST", "/api/keys/{key}/disable", Admin, [401, 403, 403, 200]),
    route("POST", "/api/keys/{key}/reactivate", Admin, [401, 403, 403, 200]),
    route("POST", "/api/keys/validate", Anyone, [200, 200, 200, 200]).json(r#"{"key":"{key}"}"#),

    // System.
    route("GET", "/healthz", Anyone, [200, 200, 200, 200]),
    route("GET", "/healthz/stores", Anyone, [200, 200, 200, 200]),
    route("GET", "/openapi.json", Anyone, [200, 200, 200, 200]),

    // Pages: public ones.
    route("GET", "/assets/style.css", Anyone, [200, 200, 200, 200]),
    route("GET", "/assets/app.js", Anyone, [200, 200, 200, 200]),
    // An admin is sent to the console.
    route("GET", "/", Anyone, [200, 200, 200, 303]),
    // A signed-in browser is sent home.
    route("GET", "/login", Anyone, [200, 303, 303, 303]),
    route("POST", "/sign-in", Anyone, [303, 303, 303, 303]).form("email={probe}&password={password}"),
    route("GET", "/register", Anyone, [200, 200, 200, 200]),
    route("POST", "/sign-up", Anyone, [303, 303, 303, 303]).form("email={fresh}&password={password}"),
    route("GET", "/logout", Anyone, [200, 200, 200, 200]),
    route("POST", "/logout", Anyone, [303, 303, 303, 303]).form(""),
    route("GET", "/reactivation-link", Anyone, [200, 200, 200, 200]),
    route("POST", "/reactivation-link", Anyone, [200, 200, 200, 200]).form("email={email}"),

    // Pages: signed-in ones, each about the caller's own account.
    route("GET", "/welcome-back", SignedIn, [303, 200, 200, 200]),
    route("GET", "/pricing", SignedIn, [303, 200, 200, 200]),
    route("POST", "/checkout", SignedIn, [303, 400, 200, 200]).form("plan=grower&billing_period=monthly"),
    route("GET", "/subscription", SignedIn, [303, 200, 200, 200]),
    route("POST", "/subscription/cancel", SignedIn, [303, 303, 400, 400]).form(""),
    route("POST", "/subscription/undo-cancel", SignedIn, [303, 303, 400, 400]).form(""),
    route("GET", "/account", SignedIn, [303, 200, 200, 200]),
    route("POST", "/account/deactivate", SignedIn, [303, 200, 200, 200]).form("confirm=yes").closes_account(),
    route("POST", "/account/erase", SignedIn, [303, 200, 200, 200]).form("confirmation=DELETE").closes_account(),

    // Pages: the admin console. An admin's action answers with a redirect
    // back; a customer gets the 403 page before anything is asked.
    route("GET", "/admin", Admin, [303, 403, 403, 303]),
    route("GET", "/admin/keys", Admin, [303, 403, 403, 200]).query("?email={email}"),
    route("POST", "/admin/keys", Admin, [303, 403, 403, 303]).form("email={fresh}&days=14"),
    route("GET", "/admin/keys/{key}", Admin, [303, 403, 403, 200]),
    route("POST", "/admin/keys/{key}/edit", Admin, [303, 403, 403, 303]).form("name=Renamed&on:beta=on"),
    route("POST", "/admin/keys/{key}/extend", Admin, [303, 403, 403, 303]).form("days=7&back=/admin/keys"),
    route("POST", "/admin/keys/{key}/email", Admin, [303, 403, 403, 303]).form(""),
    route("POST", "/admin/keys/{key}/close", Admin, [303, 403, 403, 303]).form(""),
    route("POST", "/admin/keys/{key}/disable", Admin, [303, 403, 403, 303]).form(""),
    route("POST", "/admin/keys/{key}/reactivate", Admin, [303, 403, 403, 303]).form(""),
    route("GET", "/admin/users", Admin, [303, 403, 403, 200]).query("?email={email}"),
    route("GET", "/admin/users/{email}", Admin, [303, 403, 403, 200]),
    route("GET", "/admin/metrics", Admin, [303, 403, 403, 200]),
    route("GET", "/admin/webhooks", Admin, [303, 403, 403, 200]),
    route("POST", "/admin/webhooks/replay", Admin, [303, 403, 403, 303]).form(""),
    route("POST", "/admin/users/{email}/account/reactivate", Admin, [303, 403, 403, 303]).form("note=support"),
    route("POST", "/admin/users/{email}/account/deactivate", Admin, [303, 403, 403, 303]).form("reason=admin").closes_account(),
    route("POST", "/admin/users/{email}/account/erase", Admin, [303, 403, 403, 303]).form("confirmation=DELETE").closes_account(),
];

/// The CSRF value every caller's cookie and forms carry.
const CSRF: &str = "matrix-csrf-value";
const PROBE_EMAIL: &str = "probe@example.com";

#[test]
fn each_row_agrees_with_its_access_class() {
    for row in ROUTES {
        let [nobody, a, b, admin] = row.expect;
        let what = format!("{} {}", row.method, row.path);
        match row.access {
            Admin => assert!(
                [401, 303].contains(&nobody) && a == 403 && b == 403 && admin != 403,
                "{what}: only an admin passes"
            ),
            SignedIn => assert!(
                [401, 303].contains(&nobody) && ![401, 403].contains(&a),
                "{what}: a signed-in owner passes, nobody does"
            ),
            Anyone => assert!(
                row.expect.iter().all(|status| ![401, 403].contains(status)),
                "{what}: anyone passes"
            ),
            Stripe => assert!(
                row.expect.iter().all(|status| *status == 400),
                "{what}: unsigned is refused"
            ),
        }
    }
}

/// The web app's routes, read from its router's source: axum offers no
/// listing of a router's routes, so each `.route("path", get(..).post(..))`
/// call is found by a plain scan and its methods by the method routers it
/// names.
fn page_routes() -> BTreeSet<(String, String)> {
    let sources = [
        include_str!("../../src/web/mod.rs"),
        include_str!("../../src/web/admin/mod.rs"),
    ];
    let mut routes = BTreeSet::new();
    for (start, source) in sources
        .iter()
        .flat_map(|source| source.match_indices(".route(").map(move |(start, _)| (start, *source)))
    {
        let call = &source[start + ".route(".len()..];
        // The call's arguments, up to its closing parenthesis.
        let mut depth = 1;
        let end = call
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(at, _)| at)
            .expect("a closed .route( call");
        let arguments = &call[..end];
        let path = arguments.split('"').nth(1).expect("a path literal");
        for method in ["get", "post", "put", "patch", "delete"] {
            let named = arguments.match_indices(&format!("{method}(")).any(|(at, _)| {
                !arguments[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if named {
                routes.insert((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_route_served_has_exactly_one_row_and_every_row_is_served() {
    let mesh = spawn_mesh().await;
    let document: Value = mesh.get("/openapi.json", None).await.json().await.unwrap();
    let mut served = page_routes();
    assert!(served.contains(&("GET".into(), "/account".into())), "{served:?}");
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            served.insert((method.to_uppercase(), path.clone()));
        }
    }
    let mut listed = BTreeSet::new();
    for row in ROUTES {
        let added = listed.insert((row.method.to_owned(), row.path.to_owned()));
        assert!(added, "{} {} has two rows", row.method, row.path);
    }
    let unlisted: Vec<_> = served.difference(&listed).collect();
    let unserved: Vec<_> = listed.difference(&served).collect();
    assert!(unlisted.is_empty(), "routes without a row in ROUTES: {unlisted:?}");
    assert!(
        unserved.is_empty(),
        "rows for routes the gateway does not serve: {unserved:?}"
    );
}

/// The account a row names, and what of it nobody else may see.
#[derive(Clone, Debug)]
struct Subject {
    id: String,
    email: String,
    /// The key routes name the first.
    keys: Vec<String>,
}

impl Subject {
    fn secrets(&self) -> Vec<&str> {
        let mut secrets = vec![self.id.as_str(), self.email.as_str()];
        secrets.extend(self.keys.iter().map(String::as_str));
        secrets
    }
}

/// A caller's credentials: an access token, sent as a bearer token and as
/// the web app's access cookie.
struct Caller {
    token: Option<String>,
}

struct Matrix {
    mesh: TestMesh,
    /// Follows no redirect: a page's 303 is its answer.
    http: reqwest::Client,
    emails: AtomicUsize,
}

/// One answer.
struct Answer {
    status: u16,
    location: String,
    body: String,
    /// What the caller sent (path and body), placeholders filled in.
    sent: String,
}

impl Matrix {
    fn fresh_email(&self, what: &str) -> String {
        format!("{what}-{}@example.com", self.emails.fetch_add(1, Ordering::Relaxed))
    }

    /// A new customer, logged in.
    async fn customer(&self, what: &str) -> (Subject, Caller) {
        let email = self.fresh_email(what);
        let user = self.mesh.register(&email).await;
        let token = self.mesh.token(&email, PASSWORD).await;
        let subject = Subject {
            id: user["id"].as_str().unwrap().to_owned(),
            email,
            keys: Vec::new(),
        };
        (subject, Caller { token: Some(token) })
    }

    /// A new admin, logged in: a customer given the role by an operator.
    async fn admin(&self) -> Caller {
        let (subject, _) = self.customer("staff").await;
        let promoted = self
            .mesh
            .count(
                Service::Identity,
                "WITH promoted AS (UPDATE users SET role = 'admin' WHERE email = $1 RETURNING id) \
                 SELECT count(*) FROM promoted",
                &subject.email,
            )
            .await;
        assert_eq!(promoted, 1);
        Caller {
            token: Some(self.mesh.token(&subject.email, PASSWORD).await),
        }
    }

    fn fill(&self, template: &str, subject: &Subject) -> String {
        template
            .replace("{id}", &subject.id)
            .replace("{email}", &subject.email)
            .replace(
                "{key}",
                subject.keys.first().map_or("SK-AAAA-BBBB-CCCC-DDDD", String::as_str),
            )
            .replace("{probe}", PROBE_EMAIL)
            .replace("{password}", PASSWORD)
            .replace("{fresh}", &self.fresh_email("new"))
    }

    async fn send(&self, row: &Route, caller: &Caller, subject: &Subject) -> Answer {
        let path = format!("{}{}", self.fill(row.path, subject), row.query);
        let method = Method::from_bytes(row.method.as_bytes()).unwrap();
        let mut request = self.http.request(method, self.mesh.url(&path));
        let mut cookie = format!("csrf={CSRF}");
        if let Some(token) = &caller.token {
            request = request.bearer_auth(token);
            cookie.push_str(&format!("; access={token}"));
        }
        request = request.header(reqwest::header::COOKIE, cookie);
        let sent_body = match row.body {
            Body::Empty => String::new(),
            Body::Json(template) => {
                let body = self.fill(template, subject);
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
                body
            }
            Body::Form(template) => {
                let fields: Vec<(String, String)> = std::iter::once(("csrf".to_owned(), CSRF.to_owned()))
                    .chain(template.split('&').filter(|pair| !pair.is_empty()).map(|pair| {
                        let (name, value) = pair.split_once('=').unwrap();
                        (name.to_owned(), self.fill(value, subject))
                    }))
                    .collect();
                let encoded = fields
                    .iter()
                    .map(|(name, value)| format!("{name}={}", form_encoded(value)))
                    .collect::<Vec<_>>()
                    .join("&");
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(encoded);
                format!("{fields:?}")
            }
        };
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        Answer {
            status,
            location,
            body: response.text().await.unwrap(),
            sent: format!("{path} {sent_body}"),
        }
    }
}

fn form_encoded(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => (byte as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// A's data in an answer to someone else, leaving out what they sent
/// themselves (a key validated, an email asked a link for).
fn leaked<'a>(answer: &Answer, owner: &'a Subject) -> Vec<&'a str> {
    owner
        .secrets()
        .into_iter()
        .filter(|secret| !answer.sent.contains(secret) && answer.body.contains(secret))
        .collect()
}

#[tokio::test]
async fn every_route_answers_each_caller_as_the_table_says_and_never_shows_a_customer_another_ones_data() {
    let mesh = spawn_mesh_with(|identity| identity.login.max_per_client_per_minute = 10_000, |_| {}).await;
    let matrix = Matrix {
        mesh,
        http: reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .build()
            .unwrap(),
        emails: AtomicUsize::new(0),
    };
    let mesh = &matrix.mesh;
    mesh.register(PROBE_EMAIL).await;

    // A: a paying customer, whose trial key became a production key when
    // they subscribed (waited for: it changes as the payment arrives).
    let customer = mesh.customer_with_trial_key("owner-a@example.com").await;
    mesh.subscribe(&customer.token, "builder", "monthly").await;
    eventually("A's trial becomes a production key", || async {
        mesh.key(&customer.key).await["isTrial"] == false
    })
    .await;
    let admin = Caller {
        token: Some(mesh.token(ADMIN_EMAIL, ADMIN_PASSWORD).await),
    };
    let a = Subject {
        id: customer.id.clone(),
        email: "owner-a@example.com".into(),
        keys: vec![customer.key.clone()],
    };
    let user_a = Caller {
        token: Some(customer.token.clone()),
    };
    let (_, user_b) = matrix.customer("customer-b").await;
    let nobody = Caller { token: None };

    let mut wrong = Vec::new();
    for row in ROUTES {
        for (index, who) in EXPECTED.iter().enumerate() {
            let throwaway;
            let (subject, caller) = if row.closes_account {
                // A fresh A for each caller, who is A, a fresh B or a fresh admin.
                let (owner, owner_caller) = matrix.customer("closing-a").await;
                let caller = match index {
                    0 => Caller { token: None },
                    1 => owner_caller,
                    2 => matrix.customer("closing-b").await.1,
                    _ => matrix.admin().await,
                };
                throwaway = owner;
                (&throwaway, caller)
            } else {
                let caller = match index {
                    0 => &nobody,
                    1 => &user_a,
                    2 => &user_b,
                    _ => &admin,
                };
                (
                    &a,
                    Caller {
                        token: caller.token.clone(),
                    },
                )
            };
            let answer = matrix.send(row, &caller, subject).await;
            let what = format!("{} {}{} as {who}", row.method, row.path, row.query);
            if answer.status != row.expect[index] {
                wrong.push(format!(
                    "{what}: {} instead of {} ({})",
                    answer.status,
                    row.expect[index],
                    answer.body.chars().take(200).collect::<String>()
                ));
            }
            if index == 0
                && [SignedIn, Admin].contains(&row.access)
                && answer.status == 303
                && answer.location != "/login"
            {
                wrong.push(format!("{what}: sent to {} instead of /login", answer.location));
            }
            if index == 0 || index == 2 {
                let leaked = leaked(&answer, subject);
                if !leaked.is_empty() {
                    wrong.push(format!("{what}: shows A's {leaked:?}"));
                }
            }
            if row.closes_account && index == 2 {
                let login = mesh.login(&subject.email, PASSWORD).await.status();
                if login != StatusCode::OK {
                    wrong.push(format!("{what}: A can no longer log in ({login})"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} answers differ from the table:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
