//! `zen-lead-crdgen`: prints the `LeaderPolicy` CRD as YAML.
//!
//! `cargo run --bin zen-lead-crdgen > config/crd/bases/coordination.kube-zen.io_leaderpolicies.yaml`

fn main() -> anyhow::Result<()> {
    print!("{}", zen_lead::api::crd_yaml()?);
    Ok(())
}
