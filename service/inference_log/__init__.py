"""The inference log: answered predictions (a sampled share) and feedback items, kept as
Parquet files partitioned by model and date, and optionally posted to an HTTP sink as
CloudEvents in KServe's payload-logger format.

What Databricks calls inference tables and KServe's payload logger provides: the rows a
team joins offline (inputs, outputs, who answered, and the truth that came later).

Rules:
- it never delays or fails an answer: the request path only samples (one check when
  sampling is off) and offers a row to bounded queues, which never block; files and the
  sink are written by background threads, one per destination and worker;
- memory is bounded: each queue holds at most a number of rows and of bytes (an input is
  cut to ``STAGESERVE_INFERENCE_LOG_MAX_INPUT_BYTES``), and a row that does not fit is
  dropped;
- every drop is counted (``stageserve_inference_log_dropped_total``, by destination and
  reason), never silent;
- nothing accepted is lost on SIGTERM: the gateway's stop writes every queued row and
  closes (renames) every file, within a bounded time;
- a reader never sees half a file: files are written under a hidden temporary name and
  renamed when complete.

Modules: ``records`` (the row), ``sampling``, ``bounded_queue``, ``file_layout`` (paths,
names, rotation), ``parquet_files`` and ``file_writer`` (the Parquet destination),
``cloud_events`` and ``http_sink`` (the CloudEvents destination), ``log_counts`` (what
is counted, and where), ``recorder`` (``InferenceLog``, what the gateway holds).
"""
