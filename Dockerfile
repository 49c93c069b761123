# The Python services (ingest, analytics, api, the simulator and the broker's
# init step) in one image; docker-compose.yml picks the command of each.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CITY_ENVIRONMENT=production \
    CITY_DATA_DIR=/var/lib/city

WORKDIR /app
COPY . /app
# opendata-cache: a volume of its own in docker-compose.yml (the API's and the rollup job's), owned by city
RUN pip install /app \
    && groupadd --gid 10001 city \
    && useradd --uid 10001 --gid 10001 --home-dir /var/lib/city --create-home --shell /usr/sbin/nologin city \
    && install -d -o city -g city /var/lib/city/opendata-cache

# deploy/ is run from /app (`python -m deploy.lease ...`), so /app stays the working directory.
USER city
VOLUME ["/var/lib/city"]
CMD ["python", "-m", "api"]
