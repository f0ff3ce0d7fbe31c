# One image for every Scorebridge process (web, workers, beat); docker-compose.yml picks the
# command. Build for GPU scoring workers with: --build-arg TORCH_INDEX_URL= --build-arg EXTRAS=gpu
FROM python:3.11-slim-bookworm

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG EXTRAS=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    SCOREBRIDGE_VAR_DIR=/var/lib/scorebridge

RUN apt-get update && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
RUN SCOREBRIDGE_TORCH_INDEX_URL="$TORCH_INDEX_URL" bash scripts/bootstrap.sh \
    && if [ -n "$EXTRAS" ]; then .venv/bin/pip install -e ".[${EXTRAS}]"; fi \
    && SCOREBRIDGE_SECRET_KEY=build .venv/bin/python manage.py collectstatic --noinput -v 0
ENV PATH=/app/.venv/bin:$PATH
EXPOSE 8000
CMD ["gunicorn", "scorebridge.wsgi", "-c", "gunicorn.conf.py", "--bind", "0.0.0.0:8000", "--workers", "3"]
