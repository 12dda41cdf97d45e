# One runtime image for every gymstream service (producer, workers, sink, scripted model).
# Runtime dependencies only: requirements.lock pins them (the dev tools have their own lock,
# which scripts/setup installs for the tests). Runs as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml requirements.lock README.md topics.yaml ./
COPY gymstream ./gymstream
COPY workers ./workers
COPY environments ./environments
RUN pip install --no-cache-dir build \
    && python -m build --wheel --outdir /wheels . \
    && pip wheel --no-cache-dir -r requirements.lock --wheel-dir /wheels

FROM python:3.11-slim
COPY --from=build /src/requirements.lock /tmp/requirements.lock
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels -r /tmp/requirements.lock \
    && pip install --no-cache-dir --no-index --no-deps /wheels/gymstream-*.whl \
    && rm -rf /wheels /tmp/requirements.lock \
    && useradd --create-home --uid 10001 gymstream \
    && mkdir -p /results && chown gymstream /results
USER gymstream
WORKDIR /home/gymstream
ENV GYMSTREAM_KAFKA_BOOTSTRAP=kafka:19092 \
    GYMSTREAM_MODEL_BASE_URL=http://model:8000/v1 \
    GYMSTREAM_MODEL_NAME=scripted \
    GYMSTREAM_METRICS_PORT=9464 \
    PYTHONUNBUFFERED=1
# worker, sink and collect serve Prometheus metrics on /metrics and readiness on /healthz at
# GYMSTREAM_METRICS_PORT: healthy when the process has its partitions and (workers) the model
# answers; /healthz answers 503 otherwise, which urlopen raises on.
EXPOSE 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GYMSTREAM_METRICS_PORT', '9464'), timeout=4).close()"
ENTRYPOINT ["gymstream"]
