select
    storefront_id,
    print_type_id,
    print_type_name_en as print_type,
    cast(sum(quantity) as bigint) as quantity,
    sum(total_price_value) as revenue,
    total_price_currency as currency,
    count(distinct order_id) as orders
from ({{ sold_items() }})
group by all
order by storefront_id, revenue desc, quantity desc, print_type_id
