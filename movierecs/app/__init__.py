"Layer 7: the command line and the web page, with their default models."
