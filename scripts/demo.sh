#!/usr/bin/env bash
# One command from a fresh clone to a running Scorebridge on this machine:
#   set up .venv, create the database, import an item bank (the shipped demo bank, or the SAF
#   data folder given as the first argument), train each item's model (progress bar), start the
#   web server, a worker and the periodic sweeper, score one answer end to end, and print the
#   URLs and the admin login. Ctrl-C stops everything.
#
#   bash scripts/demo.sh [ITEM_BANK_FOLDER]
#
# Settings come from the environment (README, "Configuration"); none is needed here.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bank=${1:-$root/scoring_plugin/demo}
if [ ! -f "$bank/items.csv" ] || [ ! -f "$bank/responses.csv" ]; then
  echo "demo: $bank must hold items.csv and responses.csv" >&2
  exit 2
fi
port=${SCOREBRIDGE_PORT:-8000}
host=${SCOREBRIDGE_HOST:-127.0.0.1}

bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TOKENIZERS_PARALLELISM=false
# A test LMS on this machine may register through an admin's registration link.
export SCOREBRIDGE_LTI_ALLOW_PRIVATE_REGISTRATION_HOSTS=${SCOREBRIDGE_LTI_ALLOW_PRIVATE_REGISTRATION_HOSTS:-1}
py=.venv/bin/python
mkdir -p var/log
# /metrics needs a bearer token (closed without one): one kept in var/metrics_token.
if [ -z "${SCOREBRIDGE_METRICS_TOKEN:-}" ]; then
  if [ ! -s var/metrics_token ]; then
    (umask 077; $py -c 'import secrets; print(secrets.token_urlsafe(24))' >var/metrics_token)
  fi
  SCOREBRIDGE_METRICS_TOKEN=$(cat var/metrics_token)
fi
export SCOREBRIDGE_METRICS_TOKEN
# Application log lines (web and workers) go to var/log/scorebridge.log, not to this terminal.
export SCOREBRIDGE_LOG_DIR=${SCOREBRIDGE_LOG_DIR:-$root/var/log}

$py manage.py migrate --noinput -v 0
$py manage.py collectstatic --noinput -v 0
$py manage.py import_items "$bank"
$py manage.py train_items --only-untrained --kind "${SCORING_TRAIN_KIND:-auto}"
# API tokens are stored hashed: a new one is made (and printed) on every start.
login=$($py manage.py ensure_admin --new-password --new-token)

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "demo: stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

# The scoring worker prefetches enough answers to fill a micro-batch; the other worker takes
# long jobs one at a time, so training never holds up scoring.
.venv/bin/celery -A workers worker -Q scoring --concurrency 1 --prefetch-multiplier 64 \
  -n "scoring@%h" --loglevel INFO >var/log/scoring-worker.log 2>&1 &
pids+=($!)
.venv/bin/celery -A workers worker -Q training,lms --concurrency 1 --prefetch-multiplier 1 \
  -n "training@%h" --loglevel INFO >var/log/training-worker.log 2>&1 &
pids+=($!)
.venv/bin/celery -A workers beat --loglevel INFO --schedule var/celerybeat-schedule \
  >var/log/beat.log 2>&1 &
pids+=($!)
.venv/bin/gunicorn scorebridge.wsgi -c gunicorn.conf.py --bind "$host:$port" --workers 2 --timeout 60 \
  --access-logfile var/log/access.log --error-logfile var/log/web.log &
pids+=($!)

for _ in $(seq 1 120); do
  if curl -fsS "http://$host:$port/health/" >/dev/null 2>&1; then break; fi
  sleep 0.5
done
curl -fsS "http://$host:$port/health/" >/dev/null || { echo "demo: web server did not start (var/log/web.log)" >&2; exit 1; }

# The scoring worker loads the backbone and every active model once, before its first answer.
for _ in $(seq 1 240); do
  if grep -qs "scoring engine ready" var/log/scorebridge.log var/log/scoring-worker.log; then break; fi
  sleep 0.5
done
token=$(printf '%s\n' "$login" | sed -n 's/^api token: //p')
echo "demo: scoring one answer end to end (web -> queue -> worker -> database)"
$py scripts/submit_one.py "http://$host:$port" "$token" "$bank" || echo "demo: the check answer was not scored; see var/log/scorebridge.log and var/log/scoring-worker.log" >&2

cat <<TXT

Scorebridge is running.
  Start page:  http://$host:$port/
  Admin:       http://$host:$port/admin/
  API:         http://$host:$port/api/v1/items/   (header: Authorization: Token <api token>)
  Metrics:     http://$host:$port/metrics   (header: Authorization: Bearer $SCOREBRIDGE_METRICS_TOKEN)
$(printf '%s\n' "$login" | sed 's/^/  /')
  Logs:        var/log/
Press Ctrl-C to stop.
TXT
wait
