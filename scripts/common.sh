# Shared by the study scripts (source it from the repository root).

# Prints the path of the train example: $TRAIN_BIN if set (a prebuilt binary,
# so rebuilding the tree during a long grid changes nothing), else a fresh
# release build of the tree.
train_bin() {
  if [ -n "${TRAIN_BIN:-}" ]; then
    [ -x "$TRAIN_BIN" ] || { echo "TRAIN_BIN=$TRAIN_BIN is not an executable" >&2; return 1; }
    echo "$TRAIN_BIN"
  else
    cargo build --release --example train >&2 || return 1
    echo target/release/examples/train
  fi
}
