"""Small fixture releases written in the datasets' official layouts, for tests: real parquet /
JSON / SRT files and tiny index-coded videos (``testing.videos``), never downloaded data."""
