#!/usr/bin/env bash
# Runs a command under the Khronos validation layer (synchronization validation on) and fails
# when the layer reported anything. wgpu installs its own debug messenger, so the layer is told
# to log to a file instead, which is then counted.
#   .ci/validation.sh [--expect-messages] -- COMMAND...
# --expect-messages turns on best-practices warnings too and fails unless the file has messages:
# the proof that the layer is loaded and logging, so an empty log means clean and not unloaded.
set -euo pipefail
expect=0
if [ "${1:-}" = "--expect-messages" ]; then expect=1; shift; fi
[ "${1:-}" = "--" ] && shift
layer_json=$(ls /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json 2>/dev/null || true)
if [ -z "$layer_json" ]; then
  echo "error: the Khronos validation layer is not installed (apt-get install vulkan-validationlayers)" >&2
  exit 1
fi
dir=$(mktemp -d)
log="$dir/validation.log"
enables=VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT
[ "$expect" = 1 ] && enables="$enables,VK_VALIDATION_FEATURE_ENABLE_BEST_PRACTICES_EXT"
cat > "$dir/vk_layer_settings.txt" <<SETTINGS
khronos_validation.debug_action = VK_DBG_LAYER_ACTION_LOG_MSG
khronos_validation.log_filename = $log
khronos_validation.report_flags = error,warn
khronos_validation.enables = $enables
SETTINGS
: > "$log"
VK_INSTANCE_LAYERS=VK_LAYER_KHRONOS_validation VK_LAYER_SETTINGS_PATH="$dir" "$@"
count=$(grep -c "msgNum:" "$log" || true)
if [ "$expect" = 1 ]; then
  if [ "$count" -eq 0 ]; then
    echo "error: the validation layer logged nothing with best practices on: it is not loaded or not logging" >&2
    exit 1
  fi
  echo "validation layer active: $count best-practices messages logged (expected)"
else
  echo "validation messages: $count"
  if [ "$count" -ne 0 ]; then
    grep "msgNum:" "$log" | sed 's/ | MessageID.*//' | sort | uniq -c | sort -rn | head -20
    echo "error: the Khronos validation layer reported $count messages (full log: $log)" >&2
    exit 1
  fi
fi
rm -rf "$dir"
