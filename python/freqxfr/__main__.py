from freqxfr.cli import entry

entry()
