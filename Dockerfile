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
    PYTHONUNBUFFERED=1
# Until the processes serve /healthz (issue 12 item 1): healthy while the first bootstrap
# server accepts connections from this container.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, socket; h, _, p = os.environ['GYMSTREAM_KAFKA_BOOTSTRAP'].split(',')[0].rpartition(':'); socket.create_connection((h, int(p)), 3).close()"
ENTRYPOINT ["gymstream"]
