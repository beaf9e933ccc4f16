print("petreld")
