# The registry under gunicorn; used by docker-compose.yml. Production packages only
# (requirements.txt); .dockerignore keeps tests/ and bench/ out of the image.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput
EXPOSE 8000
# Migrations run on every start; they are idempotent. Threaded workers (gthread): a dashboard being
# computed does not hold a whole worker, so data-entry requests do not queue behind it (bench/load.py:
# data-entry p95 stayed <= 0.5 s on a busy machine, where 3 sync workers reached seconds); dashboards
# take about twice as long under load, as threads share the interpreter lock. Keep-alive outlasts
# the clients' pauses, so a reused connection is not closed under a request on its way.
CMD ["sh", "-c", "python manage.py migrate --noinput && gunicorn registry.wsgi:application --bind 0.0.0.0:8000 --workers ${GUNICORN_WORKERS:-3} --threads ${GUNICORN_THREADS:-4} --keep-alive 75 --timeout 120"]
