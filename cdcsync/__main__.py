from cdcsync.cli import main

main()
