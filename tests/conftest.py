pytest_plugins = ["tests.fakes.discord.fixtures"]
