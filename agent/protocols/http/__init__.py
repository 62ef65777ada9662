"""HTTP(S) MES sink: keep-alive connections, JSON or multipart upload, the reachability probe."""
