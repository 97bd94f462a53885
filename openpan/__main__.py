from openpan.cli.main import app

app()
