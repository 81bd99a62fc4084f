//! The deployment files agree with the code: every image the Dockerfile
//! builds is a binary of the workspace, and every port, probe and health
//! service in the Kubernetes manifests is one the binaries really serve.

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// Each service: its binary, its default port, and the gRPC service its
/// readiness probe asks about (none for the HTTP gateway).
fn services() -> Vec<(&'static str, u16, Option<&'static str>)> {
    vec![
        (
            "identity-svc",
            identity_svc::config::DEFAULT_PORT,
            Some(proto::identity::v1::identity_service_server::SERVICE_NAME),
        ),
        (
            "license-svc",
            license_svc::config::DEFAULT_PORT,
            Some(proto::license::v1::license_service_server::SERVICE_NAME),
        ),
        (
            "billing-svc",
            billing_svc::config::DEFAULT_PORT,
            Some(proto::billing::v1::billing_service_server::SERVICE_NAME),
        ),
        (
            "notify-svc",
            notify_svc::config::DEFAULT_PORT,
            Some(proto::notify::v1::notify_service_server::SERVICE_NAME),
        ),
        ("gateway", gateway::config::DEFAULT_PORT, None),
    ]
}

/// Where the stripe-double image listens (its `LISTEN_ADDR` default).
const STRIPE_DOUBLE_PORT: u16 = 12111;

#[test]
fn every_image_the_dockerfile_builds_is_a_workspace_binary_with_its_port() {
    let dockerfile = read("Dockerfile");
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("FROM runtime AS "))
        .collect();
    // The services, then the dev overlay's local Stripe.
    let images: Vec<(&str, u16, String)> = services()
        .into_iter()
        .map(|(binary, port, _)| (binary, port, format!("{binary}/src/main.rs")))
        .chain([(
            "stripe-double",
            STRIPE_DOUBLE_PORT,
            "mesh/src/bin/stripe-double.rs".to_owned(),
        )])
        .collect();
    let expected: Vec<&str> = images.iter().map(|(binary, _, _)| *binary).collect();
    assert_eq!(stages, expected, "one image stage per binary");
    for (binary, port, source) in images {
        assert!(root().join(&source).exists(), "no binary {binary} in the workspace");
        for needle in [
            format!("--bin {binary}"),
            format!("COPY --from=build /out/{binary} /usr/local/bin/{binary}"),
            format!("ENTRYPOINT [\"/usr/local/bin/{binary}\"]"),
        ] {
            assert!(dockerfile.contains(&needle), "Dockerfile lacks `{needle}`");
        }
        let stage = dockerfile.split(&format!("FROM runtime AS {binary}")).nth(1).unwrap();
        let stage = stage.split("FROM ").next().unwrap();
        assert!(
            stage.contains(&format!("EXPOSE {port}")),
            "{binary}'s image must expose {port}"
        );
    }
    let runtime = dockerfile
        .split("AS runtime")
        .nth(1)
        .unwrap()
        .split("FROM ")
        .next()
        .unwrap();
    assert!(
        runtime.contains(&format!("EXPOSE {}", platform::metrics::ADMIN_PORT)),
        "every image must expose the admin port"
    );
}

#[test]
fn manifests_listen_probe_and_call_where_the_binaries_serve() {
    let config = read("k8s/base/kustomization.yaml");
    for (binary, port, health_service) in services() {
        let manifest = read(&format!("k8s/base/{binary}.yaml"));
        for needle in [format!("containerPort: {port}"), format!("value: 0.0.0.0:{port}")] {
            assert!(manifest.contains(&needle), "k8s/base/{binary}.yaml lacks `{needle}`");
        }
        match health_service {
            Some(service) => {
                let readiness = format!("grpc: {{ port: {port}, service: {service} }}");
                let liveness = format!("grpc: {{ port: {port} }}");
                assert!(
                    manifest.contains(&readiness),
                    "{binary}: readiness must ask grpc.health.v1 about {service}"
                );
                assert!(
                    manifest.contains(&liveness),
                    "{binary}: liveness must ask grpc.health.v1 about the server"
                );
                // Migrations run before the server listens: liveness waits
                // for a startup probe that allows for a slow one.
                let startup = format!("startupProbe:\n            grpc: {{ port: {port} }}");
                assert!(manifest.contains(&startup), "{binary}: no startup probe on {port}");
                assert!(
                    startup_allowance_secs(&manifest) >= 120,
                    "{binary}: the startup probe must allow two minutes for migrations"
                );
                let url = format!("=http://{binary}:{port}");
                assert!(
                    config.contains(&url),
                    "mesh-config must point callers at {binary}:{port}"
                );
            }
            None => {
                assert!(manifest.contains("httpGet: { path: /healthz, port: http }"));
                assert!(manifest.contains("startupProbe:\n            httpGet: { path: /healthz, port: http }"));
                let document = gateway::openapi();
                assert!(
                    document.paths.paths.contains_key("/healthz"),
                    "the gateway serves /healthz"
                );
            }
        }
    }
}

#[test]
fn every_overlay_names_only_images_the_dockerfile_builds() {
    let dockerfile = read("Dockerfile");
    let mut binaries: Vec<&str> = services().into_iter().map(|(binary, _, _)| binary).collect();
    binaries.sort_unstable();
    for overlay in ["k8s/base/kustomization.yaml", "k8s/overlays/prod/kustomization.yaml"] {
        let kustomization = read(overlay);
        // Each image entry renames one image to `<registry path>/<binary>`.
        let mut images: Vec<&str> = kustomization
            .lines()
            .filter_map(|line| line.trim().strip_prefix("newName: "))
            .map(|name| name.rsplit('/').next().unwrap_or(name))
            .collect();
        images.sort_unstable();
        assert_eq!(images, binaries, "{overlay} names one image per service binary");
        for image in images {
            assert!(
                dockerfile.contains(&format!("FROM runtime AS {image}")),
                "{overlay}: no image {image}"
            );
        }
    }
}

#[test]
fn every_process_serves_metrics_on_the_admin_port_the_manifests_scrape() {
    let port = platform::metrics::ADMIN_PORT;
    let config = read("k8s/base/kustomization.yaml");
    assert!(
        config.contains(&format!("- ADMIN_ADDR=0.0.0.0:{port}")),
        "mesh-config must give every process its admin port"
    );
    assert!(
        config.contains("- metrics.yaml"),
        "the scrape NetworkPolicy is part of the base"
    );
    let skeleton = read("platform/src/service.rs");
    for (binary, _, _) in services() {
        let manifest = read(&format!("k8s/base/{binary}.yaml"));
        for needle in [
            format!("- name: metrics\n              containerPort: {port}"),
            format!("- name: metrics\n      port: {port}\n      targetPort: metrics"),
        ] {
            assert!(manifest.contains(&needle), "k8s/base/{binary}.yaml lacks `{needle}`");
        }
        // The binary reads ADMIN_ADDR: itself, or through the service
        // skeleton, whose `serve` starts the admin port.
        let main = read(&format!("{binary}/src/main.rs"));
        let by_skeleton = main.contains("platform::service_main!") || main.contains("platform::service::execute");
        assert!(
            main.contains("platform::metrics::start_admin_from_env")
                || (by_skeleton && skeleton.contains("crate::metrics::start_admin_from_env")),
            "{binary} does not serve its admin port"
        );
    }
    let policy = read("k8s/base/metrics.yaml");
    assert!(policy.contains(&format!("port: {port}")));
    let monitor = read("k8s/monitoring/service-monitor.yaml");
    assert!(monitor.contains("- port: metrics") && monitor.contains("path: /metrics"));
}

#[test]
fn the_dashboard_charts_only_families_the_processes_export() {
    // A family shows in a scrape once it has a series; the registry's
    // source names them all.
    let declared = read("platform/src/metrics.rs");
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("k8s/monitoring/reactivation-dashboard.json")).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    for target in panels.iter().flat_map(|panel| panel["targets"].as_array().unwrap()) {
        let expr = target["expr"].as_str().unwrap();
        // The series name is what precedes the label braces.
        let series = expr
            .split('{')
            .next()
            .and_then(|head| head.rsplit(['(', ' ']).next())
            .unwrap();
        let family = ["_total", "_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| series.strip_suffix(suffix))
            .unwrap_or(series);
        assert!(
            declared.contains(&format!("\"{family}\",")),
            "the dashboard charts {series}, which no process exports ({expr})"
        );
    }
}

#[test]
fn notify_scales_on_its_queue_depth_which_notify_exports() {
    let manifest = read("k8s/base/notify-svc.yaml");
    let hpa = manifest
        .split("\n---")
        .find(|document| document.contains("kind: HorizontalPodAutoscaler"))
        .expect("notify-svc has an HPA");
    let external = hpa.split("type: External").nth(1).expect("an external metric");
    assert!(external.contains("name: notify_queue_depth"), "{hpa}");
    assert!(
        read("platform/src/metrics.rs").contains("\"notify_queue_depth\","),
        "the metric the HPA reads is declared"
    );
    assert!(
        read("README.md").contains("metricsQuery: 'max(notify_queue_depth"),
        "the README shows the adapter rule that serves it"
    );
}

/// The calls each binary makes to another, read from its configuration:
/// a service calls `peer` exactly when its `src/config.rs` reads
/// `<PEER>_URL` (`LICENSE_URL` → license-svc).
fn calls_in_code() -> std::collections::BTreeSet<(String, String)> {
    let peers: Vec<&str> = services()
        .into_iter()
        .filter(|(_, _, health)| health.is_some())
        .map(|(binary, _, _)| binary)
        .collect();
    let mut calls = std::collections::BTreeSet::new();
    for (caller, _, _) in services() {
        let config = read(&format!("{caller}/src/config.rs"));
        for peer in &peers {
            let variable = format!("\"{}_URL\"", peer.trim_end_matches("-svc").to_uppercase());
            if config.contains(&variable) {
                calls.insert((caller.to_owned(), (*peer).to_owned()));
            }
        }
    }
    calls
}

/// The mesh pods a NetworkPolicy section names, line by line: the values of
/// `app.kubernetes.io/name:` selectors between `section:` and the next
/// section of the same indentation.
fn pods_named_in(policy: &str, section: &str) -> Vec<String> {
    let mut named = Vec::new();
    let mut inside = false;
    for line in policy.lines() {
        if line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':') {
            inside = line.trim() == format!("{section}:");
            continue;
        }
        if inside && let Some(name) = line.trim().strip_prefix("app.kubernetes.io/name: ") {
            named.push(name.trim().to_owned());
        }
    }
    named
}

#[test]
fn network_policies_allow_exactly_the_calls_the_code_makes() {
    let policies = read("k8s/base/network-policies.yaml");
    let mut egress = std::collections::BTreeSet::new();
    let mut ingress = std::collections::BTreeSet::new();
    for policy in policies.split("\n---\n") {
        let Some(name) = policy
            .lines()
            .find_map(|line| line.strip_prefix("  name: "))
            .map(str::trim)
        else {
            continue;
        };
        if name == "mesh-default-deny" {
            continue;
        }
        for peer in pods_named_in(policy, "egress") {
            egress.insert((name.to_owned(), peer));
        }
        for peer in pods_named_in(policy, "ingress") {
            ingress.insert((peer, name.to_owned()));
        }
    }
    let expected = calls_in_code();
    assert!(expected.contains(&("identity-svc".into(), "license-svc".into())));
    assert_eq!(
        egress, expected,
        "each caller's egress names exactly the services it calls"
    );
    assert_eq!(ingress, expected, "each service's ingress names exactly its callers");
}

#[test]
fn the_gateway_reads_client_addresses_behind_its_ingress() {
    // Without it every customer shares the ingress's address, and so one
    // rate-limit bucket; with more hops than there are, a forged
    // X-Forwarded-For entry would pick the bucket.
    let gateway = read("k8s/base/gateway.yaml");
    assert!(
        gateway.contains("- name: TRUSTED_PROXIES\n              value: \"1\""),
        "k8s/base/gateway.yaml must trust exactly the ingress's one hop"
    );
    assert!(read("gateway/src/config.rs").contains("\"TRUSTED_PROXIES\""));
}

/// `periodSeconds × failureThreshold` of the manifest's startup probe.
fn startup_allowance_secs(manifest: &str) -> u32 {
    let probe = manifest.split("startupProbe:").nth(1).expect("a startup probe");
    let field = |name: &str| -> u32 {
        probe
            .lines()
            .find_map(|line| line.trim().strip_prefix(name))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("the startup probe has no {name}"))
    };
    field("periodSeconds:") * field("failureThreshold:")
}

#[test]
fn images_are_pinned_to_a_release_never_latest() {
    let version = env!("CARGO_PKG_VERSION");
    for overlay in [
        "k8s/base/kustomization.yaml",
        "k8s/overlays/dev/kustomization.yaml",
        "k8s/overlays/prod/kustomization.yaml",
    ] {
        let kustomization = read(overlay);
        let tags: Vec<&str> = kustomization
            .lines()
            .filter_map(|line| line.trim().strip_prefix("newTag: "))
            .map(|tag| tag.trim_matches('"'))
            .collect();
        assert!(!tags.is_empty(), "{overlay} pins no image");
        assert!(!tags.contains(&"latest"), "{overlay} uses `latest`");
        if overlay.contains("overlays/prod") {
            continue;
        }
        // What `docker build` tags a local build with: the workspace's version.
        assert!(
            tags.iter().all(|tag| *tag == version),
            "{overlay}: tags {tags:?}, the workspace is {version}"
        );
    }
}

#[test]
fn the_ingress_serves_the_gateway_over_tls_through_the_one_trusted_hop() {
    let ingress = read("k8s/base/ingress.yaml");
    assert!(read("k8s/base/kustomization.yaml").contains("- ingress.yaml"));
    assert!(ingress.contains("secretName: gateway-tls"), "TLS at the ingress");
    assert!(ingress.contains("name: gateway\n                port: { name: http }"));
    assert!(read("k8s/base/gateway.yaml").contains("port: 80\n      targetPort: http"));
    // The controller is the one hop the gateway trusts, and the only peer
    // its NetworkPolicy admits.
    assert!(ingress.contains("ingressClassName: nginx"));
    assert!(read("k8s/base/gateway.yaml").contains("name: TRUSTED_PROXIES\n              value: \"1\""));
    assert!(read("k8s/base/network-policies.yaml").contains("kubernetes.io/metadata.name: ingress-nginx"));
    // The controller lets through the largest body the gateway takes.
    assert!(ingress.contains("proxy-body-size: 1m"));
}

#[test]
fn the_dev_overlay_commits_no_secret_key_and_runs_a_local_stripe() {
    let dev = read("k8s/overlays/dev/kustomization.yaml");
    assert!(dev.contains("- JWT_PRIVATE_KEY=generated/jwt.pem"));
    assert!(
        read(".gitignore")
            .lines()
            .any(|line| line == "/k8s/overlays/dev/generated")
    );
    let tracked = std::process::Command::new("git")
        .args(["ls-files", "k8s"])
        .current_dir(root())
        .output()
        .expect("git");
    let tracked = String::from_utf8_lossy(&tracked.stdout);
    assert!(
        !tracked
            .lines()
            .any(|file| file.ends_with(".pem") || file.contains("/generated/")),
        "a key is committed under k8s/:\n{tracked}"
    );
    assert!(dev.contains("- stripe-double.yaml"));
    assert!(dev.contains(&format!("STRIPE_API_BASE=http://stripe-double:{STRIPE_DOUBLE_PORT}")));
    let double = read("k8s/overlays/dev/stripe-double.yaml");
    assert!(double.contains(&format!("containerPort: {STRIPE_DOUBLE_PORT}")));
    assert!(double.contains("value: http://gateway/api/stripe/webhook"));
}
