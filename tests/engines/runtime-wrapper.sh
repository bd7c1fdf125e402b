#!/bin/sh
# A Docker runtime that records each call and then is runc. tests/run.sh
# registers it with every engine of its matrix as the runtime `wrapped`,
# through a wrapper it generates per engine that sets
# DOCKSHIM_RUNTIME_WRAPPER_LOG, so a test can tell which containers a
# RuntimeClass handler sent through a second runtime: each call appends one
# line, the arguments runc gets (they name the container).
#
# The engine runs all its containers through here, including other users':
# a log that cannot be written must not stop one, so the line is best effort.
if [ -n "${DOCKSHIM_RUNTIME_WRAPPER_LOG:-}" ]; then
    printf '%s\n' "$*" >>"$DOCKSHIM_RUNTIME_WRAPPER_LOG" 2>/dev/null || true
fi
exec runc "$@"
