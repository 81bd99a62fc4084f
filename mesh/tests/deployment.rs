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

#[test]
fn every_image_the_dockerfile_builds_is_a_workspace_binary_with_its_port() {
    let dockerfile = read("Dockerfile");
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("FROM runtime AS "))
        .collect();
    let expected: Vec<&str> = services().iter().map(|(binary, _, _)| *binary).collect();
    assert_eq!(stages, expected, "one image stage per service binary");
    for (binary, port, _) in services() {
        assert!(
            root().join(binary).join("src/main.rs").exists(),
            "no binary {binary} in the workspace"
        );
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
                let url = format!("=http://{binary}:{port}");
                assert!(
                    config.contains(&url),
                    "mesh-config must point callers at {binary}:{port}"
                );
            }
            None => {
                assert!(manifest.contains("httpGet: { path: /healthz, port: http }"));
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
    for overlay in ["k8s/base/kustomization.yaml", "k8s/overlays/prod/kustomization.yaml"] {
        let kustomization = read(overlay);
        for line in kustomization
            .lines()
            .filter_map(|line| line.trim().strip_prefix("- name: "))
        {
            if ["identity-svc", "license-svc", "billing-svc", "notify-svc", "gateway"].contains(&line) {
                assert!(
                    dockerfile.contains(&format!("FROM runtime AS {line}")),
                    "{overlay}: no image {line}"
                );
            }
        }
    }
}
