# One image for every gymstream service (producer, workers, sink, scripted model).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml requirements.lock README.md topics.yaml ./
COPY gymstream ./gymstream
COPY workers ./workers
COPY environments ./environments
RUN pip install --no-cache-dir -r requirements.lock && pip install --no-cache-dir --no-deps -e .
ENV GYMSTREAM_KAFKA_BOOTSTRAP=kafka:19092 \
    GYMSTREAM_MODEL_BASE_URL=http://model:8000/v1 \
    GYMSTREAM_MODEL_NAME=scripted
ENTRYPOINT ["gymstream"]
