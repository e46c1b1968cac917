"""A small lab inventory with a WAN between two sites' VPN gateways, a Route 53 stand-in that stands outside
its site, and a witness site outside the VPN: shared by the inventory and routing tests (issue 14)."""

WAN_LAB = """
all:
  children:
    lab:
      vars: {lab_wan_network: puente-wan, lab_wan_subnet: 10.89.250.0/24}
      children:
        onprem:
          vars: {lab_network: puente-onprem, lab_subnet: 10.89.1.0/24}
          hosts:
            onprem-vpn1: {ansible_host: 10.89.1.5, lab_wan_address: 10.89.250.10}
            onprem-api1: {ansible_host: 10.89.1.21}
            onprem-dns1: {ansible_host: 10.89.1.53}
        cloud:
          vars: {lab_network: puente-cloud, lab_subnet: 10.89.2.0/24}
          hosts:
            cloud-vpn1: {ansible_host: 10.89.2.5, lab_wan_address: 10.89.250.250}
        witness:
          vars: {lab_network: puente-witness, lab_subnet: 10.89.3.0/24}
          hosts:
            witness1: {ansible_host: 10.89.3.10}
    dns: {hosts: {onprem-dns1: }}
"""
