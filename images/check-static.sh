#!/usr/bin/env bash
# Builds the static binaries that the images copy, then checks each one the way a FROM scratch
# image runs it: statically linked; with an empty environment, from an empty read-only
# directory, as the images' non-root uid, it answers --version and --help, fails without a
# cluster with one line and its documented exit code, and works against an API server (the
# testkit). See README.md here.
#
#   images/check-static.sh                      # zen-lead-exec and zen-lead-controller
#   images/check-static.sh zen-lead-exec        # one binary
#   NO_BUILD=1 images/check-static.sh           # check binaries built before
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(zen-lead-exec zen-lead-controller)

if [ -z "${NO_BUILD:-}" ]; then
  build_args=()
  for bin in "${bins[@]}"; do build_args+=(--bin "$bin"); done
  start=$(date +%s)
  # --target keeps RUSTFLAGS away from build scripts and proc macros, which must stay dynamic.
  RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --target "$target" --workspace "${build_args[@]}"
  echo "check-static: static release build took $(($(date +%s) - start)) s"
fi
# The API server the binaries talk to: the testkit, an ordinary (dynamic) debug build.
cargo build --quiet -p zen-lead-testkit --bin zen-lead-testkit
testkit="$PWD/target/debug/zen-lead-testkit"

# As the image runs it: the Dockerfiles' USER, no capabilities, no new privileges
# (deploy/20-deployment.yaml's securityContext).
as_image=()
uid=$(id -u)
if [ "$uid" -eq 0 ]; then
  command -v setpriv >/dev/null || {
    echo "check-static: setpriv (util-linux) is needed to run as uid 65532" >&2
    exit 1
  }
  as_image=(setpriv --reuid 65532 --regid 65532 --clear-groups --no-new-privs
    --inh-caps=-all --bounding-set=-all)
  uid=65532
fi

work=$(mktemp -d)
chmod 0755 "$work"
server_pid=
cleanup() {
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Runs ENV... BIN ARGS... (env assignments first) with only that environment, from an empty
# read-only directory; sets $code and $out.
run_bare() {
  local dir
  dir=$(mktemp -d -p "$work")
  chmod 0555 "$dir"
  set +e
  out=$(cd "$dir" && "${as_image[@]}" env -i "$@" 2>&1)
  code=$?
  set -e
}

"$testkit" serve --addr 127.0.0.1:0 --kubeconfig "$work/kubeconfig" >"$work/serve.out" 2>&1 &
server_pid=$!
for _ in $(seq 100); do grep -q '^listening on' "$work/serve.out" && break; sleep 0.1; done
grep -q '^listening on' "$work/serve.out" || { cat "$work/serve.out" >&2; exit 1; }
chmod 0644 "$work/kubeconfig"
kc="KUBECONFIG=$work/kubeconfig"

failed=0
for bin in "${bins[@]}"; do
  path="$PWD/target/$target/release/$bin"
  problems=()
  if [ ! -x "$path" ]; then
    echo "check-static: FAIL $bin: $path not built" >&2
    failed=1
    continue
  fi
  kind=$(file -b "$path")
  case "$kind" in
    *"static-pie linked"* | *"statically linked"*) ;;
    *) problems+=("not static: $kind") ;;
  esac
  linked=$(ldd "$path" 2>&1 || true)
  case "$linked" in
    *"not a dynamic executable"* | *"statically linked"*) ;;
    *) problems+=("ldd lists libraries: $linked") ;;
  esac

  run_bare "$path" --version
  version=$out
  [ "$code" -eq 0 ] && [[ "$out" == "$bin "* ]] || problems+=("--version: exit $code: $out")
  run_bare "$path" --help
  [ "$code" -eq 0 ] && [[ "$out" == *"Usage: $bin"* ]] || problems+=("--help: exit $code: $out")

  # Without a cluster: one line and the documented code (docs/EXEC.md: 78, configuration;
  # the controller: 1, a startup failure).
  case "$bin" in
    zen-lead-exec) want=78; run_bare "$path" --pool my-pool -- true ;;
    zen-lead-controller) want=1; run_bare "$path" --metrics-addr 127.0.0.1:0 ;;
  esac
  no_cluster=$out
  lines=$(printf '%s\n' "$out" | wc -l)
  [ "$code" -eq "$want" ] && [ "$lines" -eq 1 ] && [[ "$out" == "$bin: "* ]] ||
    problems+=("without a cluster: want exit $want and one line '$bin: ...', got exit $code: $out")

  # Against an API server.
  case "$bin" in
    zen-lead-exec)
      run_bare "$kc" "$path" --pool image-check --namespace default --identity image-check \
        --lease-duration 4s --renew-deadline 2s --retry-period 500ms --kill-grace 1s -- /bin/true
      [ "$code" -eq 0 ] || problems+=("leading against the testkit: exit $code: $out")
      cluster="led pool image-check and ran /bin/true, exit 0"
      ;;
    zen-lead-controller)
      KUBECONFIG="$work/kubeconfig" kubectl create namespace zen-lead-system >/dev/null
      dir=$(mktemp -d -p "$work")
      chmod 0555 "$dir"
      (cd "$dir" && exec "${as_image[@]}" env -i "$kc" "$path" --identity image-check \
        --metrics-addr 127.0.0.1:0) >"$work/controller.out" 2>&1 &
      controller=$!
      holder=
      for _ in $(seq 300); do
        holder=$(KUBECONFIG="$work/kubeconfig" kubectl get lease -n zen-lead-system \
          zen-lead-controller -o 'jsonpath={.spec.holderIdentity}' 2>/dev/null || true)
        [ "$holder" = image-check ] && break
        sleep 0.1
      done
      kill -TERM "$controller" 2>/dev/null || true
      set +e
      wait "$controller"
      code=$?
      set -e
      [ "$holder" = image-check ] && [ "$code" -eq 0 ] ||
        problems+=("against the testkit: holder '$holder', exit $code after SIGTERM: $(cat "$work/controller.out")")
      cluster="held its own Lease zen-lead-controller, exit 0 on SIGTERM"
      ;;
  esac

  if [ ${#problems[@]} -gt 0 ]; then
    for p in "${problems[@]}"; do echo "check-static: FAIL $bin: $p" >&2; done
    failed=1
    continue
  fi
  echo "check-static: ok $bin ($(stat -c %s "$path") bytes; $kind)"
  echo "  as uid $uid, env -i, from an empty read-only directory:"
  echo "  --version: $version"
  echo "  without a cluster: exit $want: $no_cluster"
  echo "  with KUBECONFIG to the testkit: $cluster"
done
exit "$failed"
