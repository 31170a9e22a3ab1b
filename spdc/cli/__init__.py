"""Click command tree: `spdc recipe validate|show`, `spdc finetune`, `spdc eval`."""
