# voice-agent in a container: slim Python, the locked dependencies, a non-root
# user, a health check on /health.
#
#   docker build -t voice-agent .
#   docker run --rm --network host --env-file .env -v voice-agent-data:/app/data voice-agent
#
# WebRTC media goes over UDP ports chosen per call: with Docker's default
# bridge network the server's host candidates are the container's private
# address, which a browser cannot reach. Use --network host, or TURN_URLS
# (the server then takes a relay address itself; see README, "Deployment").

FROM python:3.11-slim-bookworm AS build
RUN pip install --no-cache-dir "uv>=0.5"
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project
COPY README.md LICENSE ./
COPY media_server ./media_server
COPY signaling ./signaling
# The project itself as a wheel (with its page), not a link to /src.
RUN uv sync --locked --no-dev --no-editable

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --create-home --home-dir /app voice
# Same path as in the build stage: the venv's scripts name /opt/venv/bin/python.
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
WORKDIR /app
# The agents' database (bookings, tickets, conversation records) lives in a
# volume, so it outlives the container: docker run -v voice-agent-data:/app/data
RUN mkdir -p /app/data && chown voice /app/data
ENV DATABASE_URL=sqlite:////app/data/voice-agent.db
VOLUME ["/app/data"]
USER voice
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4).status != 200)"]
CMD ["voice-agent", "--host", "0.0.0.0", "--port", "8080"]
