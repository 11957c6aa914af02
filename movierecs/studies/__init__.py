("Layer 8: the drivers that write the result tables in results/ (`make reproduce`, `benchmark`, `accuracy`, `topn`, `foldin`, "
 "`notebooks`). They import the library; the library never imports them.")
