"""CPU launches of verl's real trainer: ``tea-verl smoke`` (:mod:`.smoke`), what the launches share
(:mod:`.common`), and the tiny model, tokenizer and data they run on (:mod:`.tiny`)."""
