# One image for every process of the backbone; the command picks the process (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HOST=0.0.0.0
COPY pyproject.toml constraints.txt ./
COPY eventbus eventbus
COPY registry registry
COPY services services
COPY migrations migrations
COPY schemas schemas
COPY alembic.ini ./
RUN pip install --no-cache-dir -c constraints.txt .
RUN useradd --system --uid 10001 app
USER app
CMD ["python", "-m", "services.stack", "--help"]
