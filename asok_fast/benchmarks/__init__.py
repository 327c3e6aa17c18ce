"""Benchmarks of asok_fast against its alternatives (``asok-fast bench``).

* :mod:`.workloads` - the workloads W1..W9 (W7..W9 with a new body on every
  request): bodies, requests, config (defined once);
* :mod:`.stacks` - what is measured: the bare app, asok_fast on either core, the
  C-work floors (gzip-6, zstd-3, brotli-4), and the Flask / Django / Asok
  anchors, each with a check that it did its work;
* :mod:`.runner` - the interleaved measurement, the table, the targets, JSON and SVG output.

Shipped with the package so that ``asok-fast bench`` runs from an install; the
anchors need the ``bench`` extra (``pip install 'asok-fast[bench]'``).  Nothing
a production install runs imports this package: the command line imports the
runner only when ``bench`` is the subcommand.
"""
