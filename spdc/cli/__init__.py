"""Click command tree: `spdc recipe validate|show|reference`, `spdc finetune`, `spdc eval`, `spdc compress`,
`spdc fold`, `spdc export`, `spdc validate`, `spdc bench`, `spdc report`."""
