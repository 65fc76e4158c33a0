"""The app admin's surface: admin REST routes and the dashboard."""
