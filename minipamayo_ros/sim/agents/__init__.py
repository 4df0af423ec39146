"""Road users of the traffic world: kinematics, behaviour models, static objects, fault rules."""
