# zen-lead-controller as an image whose only content is the static binary; deploy/ runs it.
#
# Build the static binary first (from the repository root; see README.md here):
#   RUSTFLAGS="-C target-feature=+crt-static" cargo build --release \
#     --target x86_64-unknown-linux-gnu --bin zen-lead-controller
#   docker build -f images/controller.Dockerfile -t zen-lead-controller:0.1.0 .
FROM scratch
COPY target/x86_64-unknown-linux-gnu/release/zen-lead-controller /zen-lead-controller
# Non-root, numeric (the distroless "nonroot" uid), so that the kubelet can enforce
# runAsNonRoot on an image without /etc/passwd; deploy/20-deployment.yaml sets the same uid.
USER 65532:65532
# Metrics, /healthz and /readyz (--metrics-addr).
EXPOSE 8080
ENTRYPOINT ["/zen-lead-controller"]
