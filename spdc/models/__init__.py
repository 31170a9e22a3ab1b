"""Models: family specs (`families`), encoder shape and FLOPs (`shape`), the on-disk format of folded models
(`structure`) and loading/saving classifiers (`loading`)."""
