#!/usr/bin/env bash
# Schemathesis against a live registry: every operation of /api/schema/ is called with generated
# valid and invalid data; a 5xx, an undocumented status code, a wrong content type or a response
# that does not match the schema fails the run (exit code non-zero).
#
#   bash .ci/schemathesis.sh                          # 3-4 minutes on the reference machine
#   ST_PHASES=examples,fuzzing bash .ci/schemathesis.sh  # about a minute and a half
# (also ST_MAX_EXAMPLES, ST_ANALYSIS_EXAMPLES, ST_SEED)
#
# The server is gunicorn on 127.0.0.1 (a free port) over a scratch database with the demo data
# (PostgreSQL on 127.0.0.1:5432 when it is up, else a SQLite file), dropped at the end; requests
# are made with a coordinator's API token, so every write path is exercised.
# Schemathesis is a CI tool, not a dependency of the registry: it is installed, pinned, into its own
# virtual environment (cached between runs), so its pytest plugins never load in the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-.venv/bin/python}"
ST_VERSION=4.32.5
ST_VENV="${ST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/sarcoma-registry/schemathesis-$ST_VERSION}"
ST_MAX_EXAMPLES="${ST_MAX_EXAMPLES:-10}"
ST_ANALYSIS_EXAMPLES="${ST_ANALYSIS_EXAMPLES:-10}"  # a survival report takes a second or two
ST_SEED="${ST_SEED:-20251127}"
ST_PHASES="${ST_PHASES:-examples,coverage,fuzzing}"  # coverage: every boundary value, ~2/3 of the time

if [ ! -x "$ST_VENV/bin/st" ]; then
  echo "Installing schemathesis $ST_VERSION into $ST_VENV"
  "$PY" -m venv "$ST_VENV"
  "$ST_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r /dev/stdin 2> >(grep -v "is ignored" >&2) <<EOF
schemathesis==$ST_VERSION
anyio==4.16.0
certifi==2026.10.19.post1
charset-normalizer==3.5.3
click==8.5.1
graphql-core==3.3.2
harfile==0.6.0
hypothesis==6.170.17
hypothesis-graphql==0.13.5
idna==3.20
iniconfig==2.3.1
jsonschema_rs==0.60.3
markdown-it-py==4.3.0
MarkupSafe==3.0.4
mdurl==0.1.2
packaging==26.4
pluggy==1.7.0
Pygments==2.21.0
pyrate-limiter==4.5.1
pytest==9.2.0
PyYAML==6.0.4
requests==2.34.2
rich==15.0.0
sortedcontainers==2.4.0
typing_extensions==4.16.0
urllib3==2.8.0
Werkzeug==3.1.9
EOF
fi

WORK="$(mktemp -d)"
SERVER_PID=""
DB=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -n "$DB" ]; then dropdb -h 127.0.0.1 -U postgres --if-exists --force "$DB" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if command -v pg_isready >/dev/null && pg_isready -h 127.0.0.1 -p 5432 -q; then
  DB="registry_schemathesis_$$"
  createdb -h 127.0.0.1 -U postgres "$DB"
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
else
  export DATABASE_URL="sqlite:///$WORK/registry.sqlite3"
fi
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export SECRET_KEY="schemathesis-only-secret-key" EXPORT_SHIFT_KEY="schemathesis-only-shift-key" DEBUG=0 ALLOWED_HOSTS=127.0.0.1 SECURE_COOKIES=0 LOG_LEVEL=ERROR
# Schemathesis sends thousands of requests a minute: the throttles are tested by the test suite.
export API_RATE_TOKEN=1000000/minute API_RATE_USER=1000000/minute API_RATE_ANON=1000000/minute API_BAD_TOKEN_LIMIT=1000000

echo "Scratch database: ${DATABASE_URL%%\?*}"
"$PY" manage.py migrate --noinput -v 0
"$PY" manage.py seed_demo --patients 300 >/dev/null
TOKEN="$("$PY" manage.py shell -c '
from django.contrib.auth import get_user_model
from registry.api.models import ApiToken
print(ApiToken.issue(user=get_user_model().objects.get(username="coordinator"), kind="api", name="schemathesis")[1])' \
  | tail -n 1)"

# No request-line limit: gunicorn's own 414 for URLs over 4 kB is the web server's answer, not the
# registry's (generated query strings of analysis plans get that long).
"$PY" -m gunicorn registry.wsgi:application --bind "127.0.0.1:$PORT" --workers 2 --timeout 60 \
  --limit-request-line 0 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
SCHEMA="http://127.0.0.1:$PORT/api/schema/"
for _ in $(seq 60); do
  "$PY" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$SCHEMA" 2>/dev/null && break
  sleep 0.5
done

# Every check runs (--checks all). positive_data_acceptance expects a schema-valid request to be
# accepted; these refusals are the registry's business rules, which an OpenAPI schema cannot state,
# so for these operations a 400 (or a 412) is an expected answer, each with its reason:
cat >"$WORK/schemathesis.toml" <<'TOML'
# Lists: `cursor` is an opaque token that only the server makes (the next/previous links); any
# other value is refused by name (400).
[[operations]]
include-method = "GET"
include-path-regex = "^/api/v1/(patients|primary-tumours|metastasectomies|systemic-therapies|follow-up|deleted-records|queries)/$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

# The analysis plan has rules between parameters (period_start <= period_end, cutoff_search_range
# low < high, complete_margins must hold R0), and `freeze` must name a freeze that exists.
[[operations]]
include-method = "GET"
include-path-regex = "^/api/v1/analysis/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

# `against` must name a freeze that exists (or live).
[[operations]]
include-method = "GET"
include-path-regex = "^/api/v1/freezes/[^/]+/diff/$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

# Writes: every rule of the data dictionary across fields and records (dates in order, one primary
# tumour per patient, the patient must exist, a pseudonym never changes centre), the record cycle
# (a status move the state does not allow, a query move its state does not allow), a signature's
# password, a freeze name already taken, a centre the user may not export; and If-Match must name
# the record's current version (412), which a generated header cannot know. If-Match is checked
# first: a request naming another version is a 412 whatever else is wrong with it
# (negative_data_rejection).
[[operations]]
include-method = ["POST", "PUT", "PATCH", "DELETE"]
include-path-regex = "^/api/v1/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "412", "429"]
checks.negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "412", "415", "422", "428", "429"]
# A change without the required If-Match is answered 428 Precondition Required (RFC 6585), the
# status made for exactly this.
checks.missing_required_header.expected-statuses = ["400", "401", "403", "406", "415", "422", "428"]
TOML

# One worker: with two, hypothesis describes a filter lambda by ast.parse in both threads at once and
# CPython 3.11.7 raises "AST constructor recursion depth mismatch" (a schemathesis runtime error).
run_st() {
  "$ST_VENV/bin/st" --config-file "$WORK/schemathesis.toml" run "$SCHEMA" \
    --header "Authorization: Token $TOKEN" \
    --checks all \
    --seed "$ST_SEED" --workers 1 --request-timeout 60 \
    --suppress-health-check too_slow,filter_too_much,data_too_large \
    --warnings off "$@"
}

status=0
started=$SECONDS
# Analysis first, on the demo data: the record operations then write whatever the rules accept.
# Its coverage phase (every boundary of 14 plan parameters) would take minutes: fuzzing only.
echo "== analysis (fuzzing, max $ST_ANALYSIS_EXAMPLES examples per operation)"
run_st --phases examples,fuzzing --max-examples "$ST_ANALYSIS_EXAMPLES" --include-tag analysis || status=$?
echo "== records and centres ($ST_PHASES, max $ST_MAX_EXAMPLES examples per operation)"
run_st --phases "$ST_PHASES" --max-examples "$ST_MAX_EXAMPLES" --exclude-tag analysis || status=$?
echo "schemathesis: $((SECONDS - started)) s, exit status $status"
if [ "$status" -ne 0 ] && grep -q "Traceback" "$WORK/server.log"; then
  echo "--- server errors ---"; grep -B2 -A30 "Traceback" "$WORK/server.log" | tail -120
fi
exit "$status"
