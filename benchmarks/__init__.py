"""Benchmarks: ``python -m benchmarks`` runs every ``bench_*.py`` module's ``main()``; ``python -m benchmarks NAME``
runs ``bench_NAME.py`` only. They print timings; they are not tests."""
