from services.playbooks.cli import main

main()
