# The greenlight worker's image (deployments/worker.yaml). Build the wheel first, then the image:
#   python -m pip wheel --no-deps -w dist .
#   docker build -t greenlight-worker:latest .
FROM python:3.11-slim
COPY dist/prefect_greenlight-*.whl /tmp/
RUN pip install --no-cache-dir /tmp/prefect_greenlight-*.whl && rm /tmp/prefect_greenlight-*.whl \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin greenlight
USER 10001
ENV PREFECT_HOME=/tmp/prefect PYTHONUNBUFFERED=1
ENTRYPOINT ["greenlight"]
CMD ["worker", "--pool", "greenlight", "--with-healthcheck"]
